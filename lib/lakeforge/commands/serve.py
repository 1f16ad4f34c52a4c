"""Serve the registry's champion over authenticated HTTP, without Spark (online scoring).

    lakeforge serve --env ENV [--host 127.0.0.1] [--port 8000] [--model NAME] [--alias champion]

Loads the Spark-free model logged with the version behind the alias, follows the alias (a promotion is picked up
without dropping a request), checks every request's bearer token (API key or JWT, serve.*) and records, logs served
records to the inference log Delta table. Prints one JSON line with the URL once it listens; stops on SIGINT or
SIGTERM after the inference log is written. Not a Spark application: ./spark-submit.sh does not run it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakeforge import cli
from lakeforge.commands import parser_for


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "serve", prog, job_file)
    parser.add_argument("--host", help="address to listen on (default serve.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default serve.port; 0 picks a free one)")
    parser.add_argument("--model", help="registered model (default serve.model, else model.registered_name)")
    parser.add_argument("--alias", help="registry alias to follow (default serve.alias, champion)")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from lakeforge.serve import serve

        settings = cli.load_settings(args.env, args.conf_dir)
        serve(settings, host=args.host, port=args.port, model=args.model, alias=args.alias)
        return 0

    return cli.run_job(job, args)
