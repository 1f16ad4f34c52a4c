"""Build the gold table from silver and train, track and register the model.

    ./spark-submit.sh train --env local [--force]
"""

import json
import sys
from dataclasses import asdict

from lakeforge.cli import add_promote_option, job_parser, run_job
from lakeforge.check import check_configuration
from lakeforge.config import load_settings
from lakeforge.features import build_gold_table
from lakeforge.runs import record_job_run
from lakeforge.spark import lakeforge_builder
from lakeforge.train import train_model


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    parser.add_argument("--force", action="store_true", help="train even if a model for this data and config exists")
    add_promote_option(parser)
    args = parser.parse_args(argv)

    def job():
        settings = load_settings(args.env, args.conf_dir)
        spark = lakeforge_builder(settings.spark, args.master).getOrCreate()
        try:
            with record_job_run(spark, settings, "train") as run:
                check_configuration(spark, settings)
                gold = build_gold_table(spark, settings)
                result = train_model(spark, settings, gold, force=args.force, promote=args.promote)
                run.mlflow_run_id = result.run_id if result.retrained else None
        finally:
            spark.stop()
        print(json.dumps(asdict(result)))

    return run_job(job, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
