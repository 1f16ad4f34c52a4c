"""Online scoring: the registry's champion behind an authenticated HTTP API, without Spark.

``serve(settings)`` checks the configuration (authentication, keys, the PII key, the inference log's location), loads
the version behind ``serve.alias`` (``models.serving``'s Spark-free model), follows the alias, and runs the service
(``serve.app``) with uvicorn until interrupted; on the way out the inference log writes what it holds.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

from lakeforge.config import Settings
from lakeforge.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["inference_log_location", "serve"]


def inference_log_location(settings: Settings) -> str:
    """Where served requests are logged (``paths.inference_log_table``: always a path, delta-rs writes by path)."""
    from lakeforge.paths import inference_log_table

    return str(inference_log_table(settings))


def _check(settings: Settings) -> None:
    cfg = settings.serve
    if not cfg.authenticates:
        raise ConfigError(f"{settings.origins.get('serve', 'serve')}: no serve.api_keys, serve.api_keys_file or "
                          "serve.jwt: lakeforge serve never answers anonymous predictions; add a key's hash (python "
                          "-m lakeforge.serve.keys NAME) or a JWT public key")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port), for uvicorn to listen on. Its protocol is given as
    IPPROTO_TCP, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections whose socket says
    so, and with it on, a keep-alive connection's every response after the first waited for the client's delayed ACK
    (about 40 ms on Linux: bench/README.md, "Online scoring")."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve(settings: Settings, *, host: str | None = None, port: int | None = None, model: str | None = None,
          alias: str | None = None, on_ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Run the service until SIGINT / SIGTERM (or ``stop`` is set: a service run in a thread of a notebook or a
    test). ``on_ready(url)`` is called once the socket listens."""
    import uvicorn

    from lakeforge.models.registry import mlflow_client
    from lakeforge.serve.app import build_app
    from lakeforge.serve.auth import Authenticator, load_api_keys
    from lakeforge.serve.inference_log import InferenceLog
    from lakeforge.serve.registry import ModelFollower

    _check(settings)
    cfg, root = settings.serve, Path(settings.project_root)
    authenticator = Authenticator(cfg, load_api_keys(cfg, root), root)
    name = model or cfg.model or settings.model.registered_name
    pii_key = settings.pii_key.get_secret_value().encode() if settings.pii_key else None
    sock = listening_socket(host or cfg.host, cfg.port if port is None else port)
    url = f"http://{sock.getsockname()[0]}:{sock.getsockname()[1]}"
    inference_log = None
    with tempfile.TemporaryDirectory(prefix="lakeforge-serve-") as cache:
        follower = ModelFollower(mlflow_client(settings.mlflow), name, alias or cfg.alias, Path(cache),
                                 cfg.poll_seconds)
        follower.refresh()
        if cfg.inference_log.enabled:
            log_cfg = cfg.inference_log
            inference_log = InferenceLog(inference_log_location(settings), flush_rows=log_cfg.flush_rows,
                                         flush_seconds=log_cfg.flush_seconds, max_buffer_rows=log_cfg.max_buffer_rows)
        app = build_app(cfg, name, follower, authenticator, inference_log, pii_key)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                               timeout_graceful_shutdown=10, limit_concurrency=cfg.max_connections))
        follower.start()

        async def announce() -> None:
            print(json.dumps({"serving": name, "url": url, "alias": alias or cfg.alias,
                              "version": follower.current.version if follower.current else None,
                              "ready": follower.current is not None,
                              **({"error": follower.last_error} if follower.last_error else {})}), flush=True)
            if on_ready is not None:
                on_ready(url)

        try:
            _run(server, sock, announce, stop)
        finally:
            follower.stop()
            if inference_log is not None:
                inference_log.close()
                log.info("inference log: %d rows written, %d dropped", inference_log.written_rows,
                         inference_log.dropped_rows)


def _loop_factory():
    """uvloop's event loop where it is installed (the serve extra brings it: more requests a second than asyncio's
    own loop, bench/README.md), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _run(server, sock: socket.socket, announce, stop: threading.Event | None) -> None:
    """uvicorn handles SIGINT / SIGTERM (a graceful stop), then raises the signal again for the handler it found;
    that handler is this one, which only notes it, so the caller's cleanup (the inference log) runs and the
    process exits 0."""
    import asyncio
    import signal

    received: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda number, frame: received.append(number))
                    for sig in (signal.SIGINT, signal.SIGTERM)}

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            await announce()
        while stop is not None and not task.done():
            if stop.is_set():
                server.should_exit = True
                break
            await asyncio.sleep(0.1)
        await task

    try:
        asyncio.run(main(), loop_factory=_loop_factory())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        log.info("stopped by signal %s", ", ".join(signal.Signals(n).name for n in received))
    sys.stdout.flush()
