"""Alerts: a metric at its alert level becomes a structured JSON log line (logger warning) and, when
``monitor.webhook_url`` is set, a JSON POST (timeout, one retry). A failed POST is logged as an error; it never
hides the alert (the job still exits 3)."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger(__name__)
RETRY_DELAY_SECONDS = 1.0


def alert_payload(batch: dict[str, Any], breaches: list[dict[str, Any]]) -> dict[str, Any]:
    """What the log line and the webhook carry: the batch (model, version, source, batch id) and each breach
    (kind, feature, metric, window, value, threshold)."""
    return {"event": "lakeforge_monitoring_alert", **batch, "alerts": breaches}


def log_alert(payload: dict[str, Any]) -> None:
    log.warning(json.dumps(payload, sort_keys=True, default=str))


def post_webhook(url: str, payload: dict[str, Any], timeout: float, attempts: int = 2) -> bool:
    """POST ``payload`` as JSON; True once the server answers 2xx. ``attempts`` = first try + retries."""
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "lakeforge-monitor"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if 200 <= response.status < 300:
                    return True
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        log.error("monitoring webhook %s failed on attempt %d/%d: %s", url, attempt, attempts, problem)
        if attempt < attempts:
            time.sleep(RETRY_DELAY_SECONDS)
    return False
