"""The stream job as spark-submit runs it (./spark-submit.sh stream ...); its code is lakeforge.commands.stream, which
`lakeforge stream ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.stream import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
