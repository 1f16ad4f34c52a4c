"""Check the configuration against the real schemas, and nothing else (no Spark job runs, no row is read).

    ./spark-submit.sh check --env local [--conf-dir DIR]

Every column the configuration names (joins, derived expressions, features, label, split, weights, monitoring's
labels table and window column) is looked up in the silver tables (their contracts before the first ingest) and
in the gold schema Spark derives from them. Exit 0 when all are found with the expected types; exit 2 with one
line per problem (file, key path, column, what was found, what was expected) otherwise.
"""

import sys

from lakeforge.check import check_configuration
from lakeforge.cli import job_parser, run_job
from lakeforge.config import load_settings
from lakeforge.spark import lakeforge_builder


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    args = parser.parse_args(argv)

    def job():
        settings = load_settings(args.env, args.conf_dir)
        spark = lakeforge_builder(settings.spark, args.master).getOrCreate()
        try:
            result = check_configuration(spark, settings)
        finally:
            spark.stop()
        print("\n".join([f"configuration of environment '{settings.env}': OK", *(f"  {line}" for line in result.lines())]))

    return run_job(job, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
