"""Ingest one source (or all) into bronze and silver Delta tables.

    lakeforge ingest --env ENV --source flights [--input PATH]
    lakeforge ingest --env ENV --all
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakeforge.cli import job_context, run_job
from lakeforge.commands import parser_for


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "ingest", prog, job_file)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--source", help="name of a source declared in conf/sources/")
    which.add_argument("--all", action="store_true",
                       help="every declared batch source (stream sources run with the stream job)")
    parser.add_argument("--input", help="file or folder to ingest instead of the source's landing path")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    cli_parser = parser(prog, job_file)
    args = cli_parser.parse_args(argv)
    if args.all and args.input:
        cli_parser.error("--input goes with --source, not --all")

    def job():
        from lakeforge.ingest import ingest_source

        with job_context(args, "ingest") as ctx:
            sources = ctx.settings.sources
            names = sorted(n for n, s in sources.items() if not s.streaming) if args.all else [args.source]
            results = ctx.done([])
            for name in names:
                results.append(ingest_source(ctx.spark, ctx.settings, name, args.input))
                print(json.dumps(results[-1].as_dict()))

    return run_job(job, args)
