"""Ingest one source (or all) into bronze and silver Delta tables.

    ./spark-submit.sh ingest --env local --source flights [--input PATH]
    ./spark-submit.sh ingest --env local --all
"""

import json
import sys

from lakeforge.cli import job_parser, run_job
from lakeforge.config import load_settings
from lakeforge.ingest import ingest_source
from lakeforge.runs import record_job_run
from lakeforge.spark import lakeforge_builder


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
        settings = load_settings(args.env, args.conf_dir)
        names = sorted(n for n, s in settings.sources.items() if s.kind != "stream_files") if args.all else [args.source]
        spark = lakeforge_builder(settings.spark, args.master).getOrCreate()
        try:
            with record_job_run(spark, settings, "ingest"):
                for name in names:
                    print(json.dumps(ingest_source(spark, settings, name, args.input).as_dict()))
        finally:
            spark.stop()

    return run_job(job, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
