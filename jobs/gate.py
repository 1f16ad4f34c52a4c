"""The gate job as spark-submit runs it (./spark-submit.sh gate ...); its code is lakeforge.commands.gate, which
`lakeforge gate ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.gate import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
