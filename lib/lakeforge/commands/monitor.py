"""Monitor the latest scored batch of a model: drift against its baseline profile, realised performance.

    lakeforge monitor --env ENV [--alias champion | --version N] [--served [--batch-id ID]]

Writes the metrics to the monitor.table Delta table, a monitoring run and an HTML report to MLflow (the report
also under the environment's storage). Exits 3 when a metric reaches its alert level (monitor.thresholds), so a
scheduler marks the run failed; the alert is also a JSON log line and, when set, a POST to monitor.webhook_url.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakeforge.cli import job_context, run_job
from lakeforge.commands import parser_for
from lakeforge.errors import EXIT_ALERT


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "monitor", prog, job_file)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="registry alias of the scoring model (default: champion)")
    which.add_argument("--version", type=int, help="registry version of the scoring model")
    parser.add_argument("--served", action="store_true",
                        help="monitor the latest batch of served traffic (the inference log of lakeforge serve) "
                             "instead of the latest scoring batch")
    parser.add_argument("--batch-id", help="with --served: this batch of the inference log")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from dataclasses import asdict

        from lakeforge.check import check_configuration
        from lakeforge.monitor import monitor_drift
        from lakeforge.score import latest_scored

        with job_context(args, "monitor") as ctx:
            check_configuration(ctx.spark, ctx.settings)
            if args.served:
                from lakeforge.monitor.served import served_batch

                scored = served_batch(ctx.spark, ctx.settings, alias=args.alias, version=args.version,
                                      batch_id=args.batch_id)
            else:
                scored = latest_scored(ctx.spark, ctx.settings, alias=args.alias, version=args.version)
            result = ctx.done(monitor_drift(ctx.spark, ctx.settings, scored))
        print(json.dumps(asdict(result), default=str))
        return EXIT_ALERT if result.alerts else 0

    return run_job(job, args)
