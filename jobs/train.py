"""The train job as spark-submit runs it (./spark-submit.sh train ...); its code is lakeforge.commands.train, which
`lakeforge train ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.train import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
