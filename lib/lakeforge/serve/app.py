"""The HTTP service (Starlette, run by uvicorn):

* ``POST /v1/models/{name}/predict`` with ``{"records": [{field: value, ...}, ...]}`` (1 to ``serve.max_records``):
  ``{"model", "version", "request_id", "predictions": [{"probability", "class"} | {"prediction"}]}``;
* ``GET /healthz`` (the process answers), ``GET /readyz`` (a model is loaded; 503 with the reason otherwise),
  ``GET /metrics`` (Prometheus).

Order of checks: credentials (401, 403), rate (429), model name (404), size (413), JSON (400), records (422). Every
refusal is logged with its reason, never with the token. The prediction runs on the event loop, on the model that
was current when the request arrived: it is a few milliseconds of CPU that no other thread could overlap under the
GIL, and handing it to a worker thread cut the throughput at 8 concurrent requests to a third (bench/README.md).
More throughput comes from more processes (replicas behind a load balancer), not threads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lakeforge.config.serving import ServeSettings
from lakeforge.errors import InvalidRecordsError, RequestRefused
from lakeforge.models.serving import columns_from_records, spark_strings
from lakeforge.serve.auth import Authenticator, RateLimiter
from lakeforge.serve.inference_log import SOURCE_TABLE, InferenceLog
from lakeforge.serve.registry import LoadedModel, ModelFollower

log = logging.getLogger("lakeforge.serve")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    records: Counter
    version: Gauge
    load_failures: Gauge
    log_rows: Gauge

    @classmethod
    def create(cls) -> "Metrics":
        r = CollectorRegistry()
        return cls(r,
                   Counter("lakeforge_serve_requests", "HTTP requests by route and status code", ["route", "code"],
                           registry=r),
                   Histogram("lakeforge_serve_request_seconds", "request latency", ["route"], buckets=LATENCY_BUCKETS,
                             registry=r),
                   Counter("lakeforge_serve_records", "records scored", ["model"], registry=r),
                   Gauge("lakeforge_serve_model_version", "registry version being served", ["model"], registry=r),
                   Gauge("lakeforge_serve_model_load_failures", "versions that failed to load", ["model"], registry=r),
                   Gauge("lakeforge_serve_inference_log_rows", "inference log rows", ["state"], registry=r))


def _hashed(inputs: dict[str, pa.Array], columns: tuple[str, ...], key: bytes | None) -> dict[str, pa.Array]:
    if not columns:
        return inputs
    if key is None:
        raise RequestRefused(500, f"inputs {list(columns)} are PII and the service has no PII key")
    out = dict(inputs)
    for name in columns:
        out[name] = pa.array([None if v is None else hmac.new(key, v.encode("utf-8"), hashlib.sha256).hexdigest()
                              for v in spark_strings(inputs[name])], pa.string())
    return out


def _log_rows(loaded: LoadedModel, columns: dict[str, pa.Array], output: np.ndarray, request_id: str, caller: str,
              received: datetime) -> pa.Table:
    spec, rows = loaded.model.spec, len(output)
    data: dict[str, pa.Array] = {
        "request_id": pa.array([request_id] * rows, pa.string()),
        "record": pa.array(range(rows), pa.int32()),
        "received_at": pa.array([received] * rows, pa.timestamp("us", tz="UTC")),
        "caller": pa.array([caller] * rows, pa.string()),
        "model_name": pa.array([loaded.name] * rows, pa.string()),
        "model_version": pa.array([loaded.version] * rows, pa.int32()),
        "run_id": pa.array([loaded.run_id] * rows, pa.string()),
        "source_table": pa.array([SOURCE_TABLE] * rows, pa.string()),
    }
    for name in (*spec.inputs, *spec.derived):
        data.setdefault(name, columns[name])
    if spec.task == "classification":
        data["probability"] = pa.array(output, pa.float64())
        data["predicted_class"] = pa.array((output >= spec.threshold).astype(np.int32))
    else:
        data["prediction"] = pa.array(output, pa.float64())
    return pa.table(data)


def build_app(settings: ServeSettings, model_name: str, follower: ModelFollower, authenticator: Authenticator,
              inference_log: InferenceLog | None, pii_key: bytes | None) -> Starlette:
    metrics = Metrics.create()
    limiter = RateLimiter(settings.rate_limit.per_second, settings.rate_limit.burst)
    follower.on_change(lambda loaded: metrics.version.labels(loaded.name).set(loaded.version))
    if follower.current is not None:
        metrics.version.labels(model_name).set(follower.current.version)

    def answer(route: str, started: float, response: Response) -> Response:
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise RequestRefused(413, f"the body is {declared} bytes; the limit is {settings.max_body_bytes} "
                                      "(serve.max_body_bytes): send fewer records per request")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                raise RequestRefused(413, f"the body is over {settings.max_body_bytes} bytes "
                                          "(serve.max_body_bytes): send fewer records per request")
        return bytes(body)

    def records_of(body: bytes) -> list[dict]:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestRefused(400, f"the body is not JSON: {exc}") from None
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list) or not records:
            raise RequestRefused(422, 'expected {"records": [{...}, ...]} with at least one record', field="records")
        if len(records) > settings.max_records:
            raise RequestRefused(422, f"{len(records)} records; at most {settings.max_records} per request "
                                      "(serve.max_records)", field="records")
        bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
        if bad is not None:
            raise RequestRefused(422, f"record {bad} is not a JSON object", field="records")
        return records

    async def predict(request: Request) -> Response:
        started, request_id = time.perf_counter(), uuid.uuid4().hex
        received = datetime.now(timezone.utc)
        name = request.path_params["name"]
        caller = None
        try:
            try:
                principal = authenticator.authenticate(request.headers.get("authorization"))
                caller = principal.name
                if not principal.may_call(name):
                    raise RequestRefused(403, f"caller '{principal.name}' may not call model '{name}'")
            except RequestRefused as refused:
                log.warning("refused %s %s from %s: %s%s", refused.status, request.url.path,
                            request.client.host if request.client else "?", refused.message,
                            f" (caller {caller})" if caller else "")
                raise
            wait = limiter.take(principal)
            if wait > 0:
                log.warning("refused 429 %s: caller '%s' is over its rate limit", request.url.path, principal.name)
                raise RequestRefused(429, f"caller '{principal.name}' is over its rate limit; retry in {wait:.2f} s",
                                     {"Retry-After": str(max(1, math.ceil(wait)))})
            if name != model_name:
                raise RequestRefused(404, f"this service serves model '{model_name}', not '{name}'")
            loaded = follower.current
            if loaded is None:
                raise RequestRefused(503, f"no model loaded yet: {follower.last_error or 'loading'}")
            records = records_of(await read_body(request))
            spec = loaded.model.spec
            try:
                inputs = columns_from_records(spec, records)
            except InvalidRecordsError as exc:
                raise RequestRefused(422, str(exc), field=exc.field, expected=exc.expected) from None
            inputs = _hashed(inputs, spec.hashed, pii_key)
            columns, output = loaded.model.score(inputs, len(records))
        except RequestRefused as error:
            return answer("predict", started, JSONResponse(
                {"error": error.message, **error.extra, "request_id": request_id}, error.status,
                {**error.headers, "X-Request-Id": request_id}))
        metrics.records.labels(loaded.name).inc(len(records))
        if inference_log is not None:
            inference_log.add(_log_rows(loaded, columns, output, request_id, caller, received))
        if spec.task == "classification":
            predictions = [{"probability": float(p), "class": int(p >= spec.threshold)} for p in output]
        else:
            predictions = [{"prediction": float(v)} for v in output]
        body = {"model": loaded.name, "version": loaded.version, "request_id": request_id, "predictions": predictions}
        return answer("predict", started, JSONResponse(body, headers={"X-Request-Id": request_id}))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        loaded = follower.current
        if loaded is None:
            return JSONResponse({"status": "not ready", "reason": follower.last_error or "loading"}, 503)
        return JSONResponse({"status": "ready", "model": loaded.name, "version": loaded.version,
                             **({"last_error": follower.last_error} if follower.last_error else {})})

    async def prometheus(request: Request) -> Response:
        metrics.load_failures.labels(model_name).set(follower.load_failures)
        if inference_log is not None:
            metrics.log_rows.labels("written").set(inference_log.written_rows)
            metrics.log_rows.labels("dropped").set(inference_log.dropped_rows)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/v1/models/{name}/predict", predict, methods=["POST"]),
        Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", prometheus),
    ])
