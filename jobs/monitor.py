"""Compute feature drift (PSI) of the latest scored batch against the model's training rows.

    ./spark-submit.sh monitor --env local [--alias champion | --version N]

Exits 3 when a feature's PSI reaches monitor.psi_alert, so a scheduler marks the run failed.
"""

import json
import sys
from dataclasses import asdict

from lakeforge.cli import job_parser, run_job
from lakeforge.config import load_settings
from lakeforge.monitor import monitor_drift
from lakeforge.score import latest_scored
from lakeforge.spark import lakeforge_builder

EXIT_DRIFT_ALERT = 3


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="registry alias of the scoring model (default: champion)")
    which.add_argument("--version", type=int, help="registry version of the scoring model")
    args = parser.parse_args(argv)

    def job():
        settings = load_settings(args.env, args.conf_dir)
        spark = lakeforge_builder(settings.spark, args.master).getOrCreate()
        try:
            scored = latest_scored(spark, settings, alias=args.alias, version=args.version)
            result = monitor_drift(spark, settings, scored)
        finally:
            spark.stop()
        print(json.dumps(asdict(result)))
        return EXIT_DRIFT_ALERT if result.alerts else 0

    return run_job(job, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
