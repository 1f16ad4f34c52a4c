"""OPTIMIZE (with Z-order) and VACUUM silver tables.

    lakeforge maintain --env ENV --all [--retention-hours 168] [--force]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from collections.abc import Sequence

from lakeforge.cli import job_context, run_job
from lakeforge.commands import parser_for


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "maintain", prog, job_file)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--source")
    which.add_argument("--all", action="store_true", help="every declared source")
    parser.add_argument("--retention-hours", type=float, default=None,
                        help="VACUUM retention (default: the table's delta.deletedFileRetentionDuration, 7 days)")
    parser.add_argument("--force", action="store_true", help="allow a retention below the table's safe retention")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from lakeforge.ingest.maintenance import maintain_source

        with job_context(args, "maintain") as ctx:
            results = ctx.done([])
            for name in (sorted(ctx.settings.sources) if args.all else [args.source]):
                results.append(maintain_source(ctx.spark, ctx.settings, name, retention_hours=args.retention_hours,
                                               force=args.force))
                print(json.dumps(asdict(results[-1])))

    return run_job(job, args)
