"""Stream a stream_files source (every file dropped into its landing folder) or a kafka source (every message on
its topics) through bronze and silver.

    lakeforge stream --env ENV --source flights_stream [--available-now] [--processing-time "30 seconds"]
    lakeforge stream --env ENV --source flights_kafka [--available-now] [--max-offsets-per-trigger N]

With its checkpoint in the environment's storage, a stopped or killed stream resumes where it was, without loss or
duplicates.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakeforge.cli import job_context, run_job
from lakeforge.commands import parser_for


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "stream", prog, job_file)
    parser.add_argument("--source", required=True, help="a source of kind stream_files or kafka")
    parser.add_argument("--available-now", action="store_true", help="process what has landed, then stop")
    parser.add_argument("--processing-time", default="30 seconds", help="micro-batch interval when running continuously")
    parser.add_argument("--max-files-per-trigger", type=int, default=None, help="stream_files: files per micro-batch")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None,
                        help="kafka: messages per micro-batch (over the source's max_offsets_per_trigger)")
    parser.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from lakeforge.ingest.stream import start_stream

        with job_context(args, "stream", record=False) as ctx:
            query = start_stream(ctx.spark, ctx.settings, args.source, available_now=args.available_now,
                                 processing_time=args.processing_time, max_files_per_trigger=args.max_files_per_trigger,
                                 max_offsets_per_trigger=args.max_offsets_per_trigger,
                                 on_batch=lambda result: print(json.dumps(result.as_dict()), flush=True))
            query.awaitTermination(args.timeout)
            query.stop()
            if query.exception() is not None:
                raise RuntimeError(f"stream {args.source} failed: {query.exception()}")

    return run_job(job, args)
