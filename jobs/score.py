"""Score a Delta table with a registered model and write the predictions Delta table.

    ./spark-submit.sh score --env local [--model NAME] [--alias champion | --version N] [--input TABLE_PATH]
                            [--incremental]

Exits 2 with one error line when the model, alias or version is not registered, the input is missing, empty or
does not match the model's signature, or --incremental finds no Change Data Feed; nothing is written then.
"""

import json
import sys

from lakeforge.cli import job_context, job_parser, run_job


def main(argv=None) -> int:
    parser = job_parser(__doc__.splitlines()[0], __file__)
    parser.add_argument("--model", help="registered model name (default: model.registered_name)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="registry alias of the model (default: champion)")
    which.add_argument("--version", type=int, help="registry version of the model")
    parser.add_argument("--input", help="Delta table path to score (default: the gold table)")
    parser.add_argument("--incremental", action="store_true",
                        help="score only rows changed since the last scored version (the input's Change Data Feed)")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
