"""Score a Delta table with a registered model and write the predictions Delta table.

    ./spark-submit.sh score --env local [--alias champion | --version N] [--input TABLE_PATH]
"""

import json
import sys
from dataclasses import asdict

from lakeforge.cli import job_parser, run_job
from lakeforge.config import load_settings
from lakeforge.score import score_table
from lakeforge.spark import lakeforge_builder


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="registry alias of the model (default: champion)")
    which.add_argument("--version", type=int, help="registry version of the model")
    parser.add_argument("--input", help="Delta table path to score (default: the gold table)")
    args = parser.parse_args(argv)

    def job():
        settings = load_settings(args.env, args.conf_dir)
        spark = lakeforge_builder(settings.spark, args.master).getOrCreate()
        try:
            result = score_table(spark, settings, alias=args.alias, version=args.version, input_path=args.input)
        finally:
            spark.stop()
        print(json.dumps(asdict(result)))

    return run_job(job, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
