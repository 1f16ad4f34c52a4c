"""The monitor job as spark-submit runs it (./spark-submit.sh monitor ...); its code is lakeforge.commands.monitor, which
`lakeforge monitor ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.monitor import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
