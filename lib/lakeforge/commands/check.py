"""Check the configuration against the real schemas, and nothing else (no Spark job runs, no row is read).

    lakeforge check --env ENV [--conf-dir DIR]          (./spark-submit.sh check ...: the same options)

Every column the configuration names (joins, derived expressions, features, label, split, weights, monitoring's
labels table and window column) is looked up in the silver tables (their contracts before the first ingest) and
in the gold schema Spark derives from them. Exit 0 when all are found with the expected types; exit 2 with one
line per problem (file, key path, column, what was found, what was expected) otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakeforge.cli import job_context, run_job
from lakeforge.commands import parser_for


def parser(prog: str | None = None, job_file: str | None = None) -> argparse.ArgumentParser:
    return parser_for(__doc__, "check", prog, job_file)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, job_file: str | None = None) -> int:
    args = parser(prog, job_file).parse_args(argv)

    def job():
        from lakeforge.check import check_configuration

        with job_context(args, "check", record=False) as ctx:
            result = check_configuration(ctx.spark, ctx.settings)
        print("\n".join([f"configuration of environment '{ctx.settings.env}': OK",
                         *(f"  {line}" for line in result.lines())]))

    return run_job(job, args)
