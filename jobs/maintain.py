"""OPTIMIZE (with Z-order) and VACUUM silver tables.

    ./spark-submit.sh maintain --env local --all [--retention-hours 168] [--force]
"""

import json
import sys
from dataclasses import asdict

from lakeforge.cli import job_parser, run_job
from lakeforge.config import load_settings
from lakeforge.ingest.maintenance import maintain_source
from lakeforge.runs import record_job_run
from lakeforge.spark import lakeforge_builder


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--source")
    which.add_argument("--all", action="store_true", help="every declared source")
    parser.add_argument("--retention-hours", type=float, default=None,
                        help="VACUUM retention (default: the table's delta.deletedFileRetentionDuration, 7 days)")
    parser.add_argument("--force", action="store_true", help="allow a retention below the table's safe retention")
    args = parser.parse_args(argv)

    def job():
        settings = load_settings(args.env, args.conf_dir)
        names = sorted(settings.sources) if args.all else [args.source]
        spark = lakeforge_builder(settings.spark, args.master).getOrCreate()
        try:
            with record_job_run(spark, settings, "maintain"):
                for name in names:
                    print(json.dumps(asdict(maintain_source(spark, settings, name,
                                                            retention_hours=args.retention_hours, force=args.force))))
        finally:
            spark.stop()

    return run_job(job, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
