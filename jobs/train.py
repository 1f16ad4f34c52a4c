"""Build the gold table from silver and train, track and register the model.

    ./spark-submit.sh train --env local [--force]
"""

import json
import sys

from lakeforge.cli import add_promote_option, job_context, job_parser, run_job


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    parser.add_argument("--force", action="store_true", help="train even if a model for this data and config exists")
    add_promote_option(parser)
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
