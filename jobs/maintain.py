"""OPTIMIZE (with Z-order) and VACUUM silver tables.

    ./spark-submit.sh maintain --env local --all [--retention-hours 168] [--force]
"""

import json
import sys
from dataclasses import asdict

from lakeforge.cli import job_context, job_parser, run_job


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
        from lakeforge.ingest.maintenance import maintain_source

        with job_context(args, "maintain") as ctx:
            results = ctx.done([])
            for name in (sorted(ctx.settings.sources) if args.all else [args.source]):
                results.append(maintain_source(ctx.spark, ctx.settings, name, retention_hours=args.retention_hours,
                                               force=args.force))
                print(json.dumps(asdict(results[-1])))

    return run_job(job, args)


if __name__ == "__main__":
    sys.exit(main())
