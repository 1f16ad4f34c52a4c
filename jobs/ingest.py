"""The ingest job as spark-submit runs it (./spark-submit.sh ingest ...); its code is lakeforge.commands.ingest, which
`lakeforge ingest ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.ingest import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
