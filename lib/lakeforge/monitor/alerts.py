"""Alerts: a metric at its alert level becomes a structured JSON log line (logger warning) and, when
``monitor.webhook_url`` is set, a JSON POST. The POST has one deadline for the whole delivery
(``webhook_timeout_seconds``, retries included): an endpoint that answers slowly, or drips its answer a byte at a
time, cannot hold the job past it. A failed POST is logged as an error (the URL without its query or
credentials); it never hides the alert (the job still exits 3)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
RETRY_DELAY_SECONDS = 1.0


def alert_payload(batch: dict[str, Any], breaches: list[dict[str, Any]]) -> dict[str, Any]:
    """What the log line and the webhook carry: the batch (model, version, source, batch id) and each breach
    (kind, feature, metric, window, value, threshold)."""
    return {"event": "lakeforge_monitoring_alert", **batch, "alerts": breaches}


def log_alert(payload: dict[str, Any]) -> None:
    log.warning(json.dumps(payload, sort_keys=True, default=str))


def shown_url(url: str) -> str:
    """``url`` as logs may show it: scheme, host, port and path; no user, password, query or fragment (tokens
    travel there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" + (" (query hidden)" if parts.query else "")


def _post_once(url: str, body: bytes, timeout: float) -> str | None:
    """None once the server answers 2xx, else what went wrong."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "lakeforge-monitor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def post_webhook(url: str, payload: dict[str, Any], timeout: float, attempts: int = 2) -> bool:
    """POST ``payload`` as JSON; True once the server answers 2xx. ``attempts`` = first try + retries, all within
    ``timeout`` seconds from now: each attempt runs in a daemon thread that is abandoned at the deadline."""
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    deadline = time.monotonic() + timeout
    for attempt in range(1, attempts + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            problem = "no time left before the deadline"
        else:
            outcome: list[str | None] = []
            worker = threading.Thread(target=lambda: outcome.append(_post_once(url, body, remaining)),
                                      name="lakeforge-webhook", daemon=True)
            worker.start()
            worker.join(remaining)
            if outcome and outcome[0] is None:
                return True
            problem = outcome[0] if outcome else f"no answer within the {timeout:g} s deadline"
        log.error("monitoring webhook %s failed on attempt %d/%d: %s", shown_url(url), attempt, attempts, problem)
        if attempt < attempts and deadline - time.monotonic() > RETRY_DELAY_SECONDS:
            time.sleep(RETRY_DELAY_SECONDS)
        elif attempt < attempts:
            log.error("monitoring webhook %s: no retry, the %g s deadline is reached", shown_url(url), timeout)
            return False
    return False
