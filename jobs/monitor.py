"""Monitor the latest scored batch of a model: drift against its baseline profile, realised performance.

    ./spark-submit.sh monitor --env local [--alias champion | --version N]

Writes the metrics to the monitor.table Delta table, a monitoring run and an HTML report to MLflow (the report
also under <storage.root>/monitoring/reports/). Exits 3 when a metric reaches its alert level (monitor.thresholds),
so a scheduler marks the run failed; the alert is also a JSON log line and, when set, a POST to monitor.webhook_url.
"""

import json
import sys

from lakeforge.cli import job_context, job_parser, run_job
from lakeforge.errors import EXIT_ALERT


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="registry alias of the scoring model (default: champion)")
    which.add_argument("--version", type=int, help="registry version of the scoring model")
    args = parser.parse_args(argv)

    def job():
        from dataclasses import asdict

        from lakeforge.check import check_configuration
        from lakeforge.monitor import monitor_drift
        from lakeforge.score import latest_scored

        with job_context(args, "monitor") as ctx:
            check_configuration(ctx.spark, ctx.settings)
            scored = latest_scored(ctx.spark, ctx.settings, alias=args.alias, version=args.version)
            result = ctx.done(monitor_drift(ctx.spark, ctx.settings, scored))
        print(json.dumps(asdict(result), default=str))
        return EXIT_ALERT if result.alerts else 0

    return run_job(job, args)


if __name__ == "__main__":
    sys.exit(main())
