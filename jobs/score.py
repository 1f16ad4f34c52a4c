"""The score job as spark-submit runs it (./spark-submit.sh score ...); its code is lakeforge.commands.score, which
`lakeforge score ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.score import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
