"""The monitoring webhook against misbehaving endpoints: one deadline for the whole delivery, retries inside it,
and URLs in the logs without their query or credentials."""

from __future__ import annotations

import logging
import socket
import threading
import time

from lakeforge.monitor.alerts import post_webhook, shown_url


def _dripping_server(hold_seconds: float):
    """A TCP server that accepts, reads the request, then sends an HTTP answer one byte every 0.5 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                server.settimeout(0.2)
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                started = time.monotonic()
                for byte in answer:
                    if stop.is_set() or time.monotonic() - started > hold_seconds:
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, stop


def test_a_slow_endpoint_cannot_hold_the_job_past_the_deadline(caplog):
    server, stop = _dripping_server(hold_seconds=60)  # a per-read timeout never fires: a byte every 0.5 s
    port = server.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook?token=s3cr3t"
    caplog.set_level(logging.ERROR, logger="lakeforge.monitor.alerts")
    try:
        started = time.monotonic()
        assert post_webhook(url, {"a": 1}, timeout=2) is False
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert elapsed < 10, f"the webhook held the job for {elapsed:.1f} s with a 2 s deadline"
    shown = f"http://127.0.0.1:{port}/hook (query hidden)"
    assert caplog.messages == [f"monitoring webhook {shown} failed on attempt 1/2: no answer within the 2 s deadline",
                               f"monitoring webhook {shown}: no retry, the 2 s deadline is reached"]


def test_urls_are_logged_without_credentials_or_query():
    assert shown_url("https://user:pw@hooks.example.com:8443/services/T0/B0?token=abc#x") == \
        "https://hooks.example.com:8443/services/T0/B0 (query hidden)"
    assert shown_url("http://127.0.0.1:9000/hook") == "http://127.0.0.1:9000/hook"
