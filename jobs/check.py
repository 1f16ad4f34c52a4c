"""Check the configuration against the real schemas, and nothing else (no Spark job runs, no row is read).

    ./spark-submit.sh check --env local [--conf-dir DIR]

Every column the configuration names (joins, derived expressions, features, label, split, weights, monitoring's
labels table and window column) is looked up in the silver tables (their contracts before the first ingest) and
in the gold schema Spark derives from them. Exit 0 when all are found with the expected types; exit 2 with one
line per problem (file, key path, column, what was found, what was expected) otherwise.
"""

import sys

from lakeforge.cli import job_context, job_parser, run_job


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    args = parser.parse_args(argv)

    def job():
        from lakeforge.check import check_configuration

        with job_context(args, "check", record=False) as ctx:
            result = check_configuration(ctx.spark, ctx.settings)
        print("\n".join([f"configuration of environment '{ctx.settings.env}': OK",
                         *(f"  {line}" for line in result.lines())]))

    return run_job(job, args)


if __name__ == "__main__":
    sys.exit(main())
