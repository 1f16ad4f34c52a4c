"""Build the gold table from silver and train, track and register the model.

    lakeforge train --env ENV [--force] [--promote gate|always|never]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakeforge.cli import add_promote_option, job_context, run_job
from lakeforge.commands import parser_for


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "train", prog, job_file)
    parser.add_argument("--force", action="store_true", help="train even if a model for this data and config exists")
    add_promote_option(parser)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from dataclasses import asdict

        from lakeforge.check import check_configuration
        from lakeforge.features import build_gold_table
        from lakeforge.train import train_model

        with job_context(args, "train") as ctx:
            check_configuration(ctx.spark, ctx.settings)
            gold = build_gold_table(ctx.spark, ctx.settings)
            result = ctx.done(train_model(ctx.spark, ctx.settings, gold, force=args.force, promote=args.promote))
            ctx.run.mlflow_run_id = result.run_id if result.retrained else None
        print(json.dumps(asdict(result)))

    return run_job(job, args)
