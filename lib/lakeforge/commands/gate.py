"""Apply the registry gate to a registered version: champion only if it clears the floor and beats the champion.

    lakeforge gate --env ENV [--alias challenger | --version N] [--promote gate|always|never] [--require-promotion]

For schedules that train with `--promote never` and gate in a task of their own (databricks.yml, conf/emr/).
Prints the decision as JSON. Exit 0 whether or not the version was promoted (scoring then uses the champion
it finds); exit 4 with --require-promotion when it was not; exit 2 when the model or version is not registered.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakeforge.cli import add_promote_option, job_context, run_job
from lakeforge.commands import parser_for
from lakeforge.errors import EXIT_NOT_PROMOTED


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    parser = parser_for(__doc__, "gate", prog, job_file)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default="challenger", help="registry alias of the version to gate (default: challenger)")
    which.add_argument("--version", type=int, help="registry version to gate")
    add_promote_option(parser)
    parser.add_argument("--require-promotion", action="store_true",
                        help=f"exit {EXIT_NOT_PROMOTED} when the version is not promoted (fails the scheduled task)")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from lakeforge.promotion import gate_registered_version

        with job_context(args, "gate") as ctx:
            decision = gate_registered_version(ctx.spark, ctx.settings, alias=args.alias, version=args.version,
                                               promote=args.promote)
            ctx.done(decision, version=decision.version, promoted=decision.promoted)
        print(json.dumps(decision.as_dict()))
        return EXIT_NOT_PROMOTED if args.require_promotion and not decision.promoted else 0

    return run_job(job, args)
