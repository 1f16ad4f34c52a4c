"""Ingest one source (or all) into bronze and silver Delta tables.

    ./spark-submit.sh ingest --env local --source flights [--input PATH]
    ./spark-submit.sh ingest --env local --all
"""

import json
import sys

from lakeforge.cli import job_context, job_parser, run_job


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--source", help="name of a source declared in conf/sources/")
    which.add_argument("--all", action="store_true",
                       help="every declared batch source (stream sources run with jobs/stream.py)")
    parser.add_argument("--input", help="file or folder to ingest instead of the source's landing path")
    args = parser.parse_args(argv)
    if args.all and args.input:
        parser.error("--input goes with --source, not --all")

    def job():
        from lakeforge.ingest import ingest_source

        with job_context(args, "ingest") as ctx:
            sources = ctx.settings.sources
            names = sorted(n for n, s in sources.items() if s.kind != "stream_files") if args.all else [args.source]
            results = ctx.done([])
            for name in names:
                results.append(ingest_source(ctx.spark, ctx.settings, name, args.input))
                print(json.dumps(results[-1].as_dict()))

    return run_job(job, args)


if __name__ == "__main__":
    sys.exit(main())
