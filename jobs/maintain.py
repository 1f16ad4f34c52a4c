"""The maintain job as spark-submit runs it (./spark-submit.sh maintain ...); its code is lakeforge.commands.maintain, which
`lakeforge maintain ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.maintain import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
