"""Score a Delta table with a registered model and write the predictions Delta table.

    ./spark-submit.sh score --env local [--model NAME] [--alias champion | --version N] [--input TABLE_PATH]
                            [--incremental]

Exits 2 with one error line when the model, alias or version is not registered, the input is missing, empty or
does not match the model's signature, or --incremental finds no Change Data Feed; nothing is written then.
"""

import json
import sys
from dataclasses import asdict

from lakeforge.cli import job_parser, run_job
from lakeforge.check import check_configuration
from lakeforge.config import load_settings
from lakeforge.score import score_table
from lakeforge.runs import record_job_run
from lakeforge.spark import lakeforge_builder


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    parser.add_argument("--model", help="registered model name (default: model.registered_name)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="registry alias of the model (default: champion)")
    which.add_argument("--version", type=int, help="registry version of the model")
    parser.add_argument("--input", help="Delta table path to score (default: the gold table)")
    parser.add_argument("--incremental", action="store_true",
                        help="score only rows changed since the last scored version (the input's Change Data Feed)")
    args = parser.parse_args(argv)

    def job():
        settings = load_settings(args.env, args.conf_dir)
        spark = lakeforge_builder(settings.spark, args.master).getOrCreate()
        try:
            with record_job_run(spark, settings, "score"):
                check_configuration(spark, settings)
                result = score_table(spark, settings, model_name=args.model, alias=args.alias, version=args.version,
                                     input_path=args.input, incremental=args.incremental)
        finally:
            spark.stop()
        print(json.dumps(asdict(result)))

    return run_job(job, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
