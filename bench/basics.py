"""What the benchmark scripts share that needs nothing beyond the standard library and pyspark, so that
``bench/train_encoded.py`` can use it on a machine where lakeforge is not installed (``common.py`` needs it)."""

from __future__ import annotations

import time
from typing import Any, Callable

from pyspark.sql import DataFrame


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``action`` took (Python's own timer), and what it returned."""
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def repeated(frame: DataFrame, base_rows: int, rows: int) -> DataFrame:
    """``frame`` (of ``base_rows`` rows) unioned with itself until it holds ``rows``, cut to exactly ``rows``."""
    copies = -(-rows // base_rows)
    out = frame
    for _ in range(copies - 1):
        out = out.unionByName(frame)
    return out.limit(rows)
