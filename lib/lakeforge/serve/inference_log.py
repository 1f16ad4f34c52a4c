"""Served traffic as a Delta table, like batch predictions: one row per scored record with its features (PII
already hashed), the model's output, the model version and the request it came in.

A request only appends its rows to an in-memory buffer (``add`` never waits on storage); a writer thread appends
the buffer to the table with delta-rs (``deltalake``, no JVM) every ``flush_rows`` rows or ``flush_seconds``. Each
write is one Delta commit and gets its own ``batch_id``, so ``monitor`` can take any of them as its batch.
``close()`` writes what is left: nothing is lost on a clean shutdown. Beyond ``max_buffer_rows`` (storage down)
rows are dropped and counted, and the requests are still answered.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timezone

import pyarrow as pa

log = logging.getLogger(__name__)

SOURCE_TABLE = "serve"  # the predictions table's source_table for served rows


class InferenceLog:
    def __init__(self, path: str, *, flush_rows: int, flush_seconds: float, max_buffer_rows: int,
                 storage_options: dict[str, str] | None = None):
        self.path, self.flush_rows, self.flush_seconds = path, flush_rows, flush_seconds
        self.max_buffer_rows, self.storage_options = max_buffer_rows, storage_options
        self._pending: list[pa.Table] = []
        self._rows = 0
        self._oldest: float | None = None
        self._lock = threading.Condition()
        self._closing = False
        self.written_rows = self.dropped_rows = self.failed_writes = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="lakeforge-inference-log", daemon=True)
        self._thread.start()

    def add(self, rows: pa.Table) -> None:
        with self._lock:
            if self._rows + rows.num_rows > self.max_buffer_rows:
                self.dropped_rows += rows.num_rows
                return
            first = self._oldest is None
            self._pending.append(rows)
            self._rows += rows.num_rows
            self._oldest = self._oldest or time.monotonic()
            if first or self._rows >= self.flush_rows:  # the writer starts its flush_seconds clock, or writes now
                self._lock.notify()

    def _due(self) -> bool:
        return self._rows >= self.flush_rows or (
            self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closing and not self._due():
                    timeout = None if self._oldest is None else max(
                        0.01, self.flush_seconds - (time.monotonic() - self._oldest))
                    self._lock.wait(timeout)
                batch, self._pending, self._rows, self._oldest = self._pending, [], 0, None
                closing = self._closing
            if batch:
                self._write(batch)
            if closing:
                return

    def _write(self, batch: list[pa.Table]) -> None:
        from deltalake import write_deltalake

        table = pa.concat_tables(batch, promote_options="permissive")
        batch_id = f"serve-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        table = table.append_column("batch_id", pa.array([batch_id] * table.num_rows, pa.string()))
        try:
            write_deltalake(self.path, table, mode="append", schema_mode="merge",
                            storage_options=self.storage_options)
        except Exception as exc:  # noqa: BLE001 - storage trouble must not stop the service
            self.failed_writes += 1
            self.dropped_rows += table.num_rows
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("inference log %s: %d rows not written: %s", self.path, table.num_rows, self.last_error)
            return
        self.written_rows += table.num_rows
        log.info("inference log %s: %d rows written (batch %s)", self.path, table.num_rows, batch_id)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is buffered and stop the writer."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout)
