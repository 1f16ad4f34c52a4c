"""The pipeline job as spark-submit runs it (./spark-submit.sh pipeline ...); its code is lakeforge.commands.pipeline, which
`lakeforge pipeline ...` runs inside a driver that already exists."""

import sys

from lakeforge.commands.pipeline import main

if __name__ == "__main__":
    sys.exit(main(job_file=__file__))
