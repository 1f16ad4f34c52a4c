"""The check job as spark-submit runs it (./spark-submit.sh check ...); its code is lakeforge.commands.check, which
`lakeforge check ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.check import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
