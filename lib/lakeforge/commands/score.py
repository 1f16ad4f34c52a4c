"""Score a Delta table with a registered model and write the predictions Delta table.

    lakeforge score --env ENV [--model NAME] [--alias champion | --version N] [--input TABLE_PATH] [--incremental]

Exits 2 with one error line when the model, alias or version is not registered, the input is missing, empty or
does not match the model's signature, or --incremental finds no Change Data Feed; nothing is written then.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakeforge.cli import job_context, run_job
from lakeforge.commands import parser_for


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "score", prog, job_file)
    parser.add_argument("--model", help="registered model name (default: model.registered_name)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="registry alias of the model (default: champion)")
    which.add_argument("--version", type=int, help="registry version of the model")
    parser.add_argument("--input", help="Delta table path to score (default: the gold table)")
    parser.add_argument("--incremental", action="store_true",
                        help="score only rows changed since the last scored version (the input's Change Data Feed)")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from dataclasses import asdict

        from lakeforge.check import check_configuration
        from lakeforge.score import score_table

        with job_context(args, "score") as ctx:
            check_configuration(ctx.spark, ctx.settings)
            result = ctx.done(score_table(ctx.spark, ctx.settings, model_name=args.model, alias=args.alias,
                                          version=args.version, input_path=args.input, incremental=args.incremental))
        print(json.dumps(asdict(result)))

    return run_job(job, args)
