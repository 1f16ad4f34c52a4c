"""``lakeforge serve`` as its users meet it: a real server (a subprocess on a free loopback port) called over HTTP.
The model is a small registered one with a Spark-free serving artifact made without Spark (tests/support/serving.py);
parity with batch scoring of a pipeline-trained champion is in test_pipeline_e2e."""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import threading
import time
from pathlib import Path

import deltalake
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lakeforge.models.serving import ServingModel, columns_from_records
from lakeforge.serve.auth import key_hash
from tests.conftest import ROOT, TEST_PII_KEY
from tests.support import serving

pytestmark = pytest.mark.timeout(900)

MODEL = "served_model"
KEYS = {"alice": "lf_alice-0123456789", "bob": "lf_bob-0123456789", "carol": "lf_carol-0123456789"}
RECORD = {"carrier": "UA", "tailnum": "N14228", "distance": 1400.0, "sched_dep_time": 1715}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    tracking = f"sqlite:///{tmp / 'mlflow.db'}"
    serving.register(tracking, MODEL, tmp / "v1", seed=1)
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp / "jwt.pem").write_bytes(signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    conf = tmp / "conf"
    shutil.copytree(ROOT / "conf", conf)
    (conf / "serve_test.yaml").write_text(yaml.safe_dump({
        "extends": "local",
        "storage": {"root": str(tmp / "lakehouse"), "landing": str(tmp / "landing")},
        "mlflow": {"tracking_uri": tracking, "artifact_root": str(tmp / "artifacts"), "experiment": "serve-tests"},
        "model": {"registered_name": MODEL},
        "serve": {
            "poll_seconds": 0.3, "max_records": 5, "max_body_bytes": 4096, "api_keys_file": None,
            "rate_limit": {"per_second": 1000, "burst": 3},
            "api_keys": [{"name": "alice", "sha256": key_hash(KEYS["alice"]), "models": [MODEL], "rate_per_second": 1000,
                          "burst": 1000},
                         {"name": "bob", "sha256": key_hash(KEYS["bob"]), "models": [MODEL], "rate_per_second": 0.2},
                         {"name": "carol", "sha256": key_hash(KEYS["carol"]), "models": ["another_model"]}],
            "inference_log": {"flush_rows": 4, "flush_seconds": 0.5},
            "jwt": {"public_key_file": str(tmp / "jwt.pem"), "audience": "lakeforge", "issuer": "https://idp.test"},
        },
    }))
    server = serving.Server(conf, "serve_test", {"LAKEFORGE_PII_KEY": TEST_PII_KEY})
    state = {"tmp": tmp, "tracking": tracking, "server": server, "served": 0, "signing": signing}
    yield state
    server.stop()


def _predict(service, records, token=KEYS["alice"], model=MODEL):
    status, body, headers = service["server"].call("POST", f"/v1/models/{model}/predict", {"records": records}, token)
    if status == 200:
        service["served"] += len(records)
    return status, body, headers


def test_health_readiness_and_the_announced_champion(service):
    server = service["server"]
    assert server.announced["ready"] is True and server.announced["version"] == 1
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    assert server.call("GET", "/healthz")[:2] == (200, {"status": "alive"})
    assert server.call("GET", "/readyz")[:2] == (200, {"status": "ready", "model": MODEL, "version": 1})


def test_no_anonymous_predictions_and_keys_only_for_their_models(service):
    server = service["server"]
    path = f"/v1/models/{MODEL}/predict"
    status, body, headers = server.call("POST", path, {"records": [RECORD]})
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert body["error"] == "no Authorization header; send Authorization: Bearer <API key or JWT>"
    assert server.call("POST", path, {"records": [RECORD]}, "lf_wrong-key")[:2][0] == 401
    assert server.call("POST", path, {"records": [RECORD]}, "lf_wrong-key")[1]["error"] == "unknown API key"
    assert server.call("POST", path, {"records": [RECORD]}, headers={"Authorization": "Basic abc"})[0] == 401
    status, body, _ = _predict(service, [RECORD], KEYS["carol"])
    assert (status, body["error"]) == (403, f"caller 'carol' may not call model '{MODEL}'")
    log = server.log_after("refused 401", "refused 403", "(caller carol)")
    assert not any(key in log for key in (*KEYS.values(), "lf_wrong-key"))


def _token(service, models, *, expires_in=300, key=None, audience="lakeforge"):
    import jwt

    claims = {"sub": "svc-booking", "iss": "https://idp.test", "aud": audience, "models": models,
              "exp": int(time.time()) + expires_in}
    return jwt.encode(claims, key or service["signing"], algorithm="RS256")


def test_jwts_are_verified_with_the_public_key_and_carry_their_models(service):
    assert _predict(service, [RECORD], _token(service, [MODEL]))[0] == 200
    assert _predict(service, [RECORD], _token(service, "other " + MODEL))[0] == 200  # a space-separated scope
    status, body, _ = _predict(service, [RECORD], _token(service, ["another_model"]))
    assert (status, body["error"]) == (403, f"caller 'svc-booking' may not call model '{MODEL}'")
    status, body, _ = _predict(service, [RECORD], _token(service, [MODEL], expires_in=-60))
    assert (status, body["error"]) == (401, "invalid JWT: Signature has expired")
    forged = _token(service, [MODEL], key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert _predict(service, [RECORD], forged)[1]["error"] == "invalid JWT: Signature verification failed"
    assert _predict(service, [RECORD], _token(service, [MODEL], audience="elsewhere"))[1]["error"] == \
        "invalid JWT: Audience doesn't match"


def test_predictions_are_the_serving_models_with_class_at_the_threshold(service):
    records = [RECORD, {**RECORD, "carrier": "ZZ", "sched_dep_time": 600}, {**RECORD, "carrier": None, "distance": None}]
    status, body, headers = _predict(service, records)
    assert status == 200 and body["model"] == MODEL and body["version"] == 1
    assert headers["x-request-id"] == body["request_id"] and re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    model = _version_1(service["tmp"] / "expected")
    inputs = columns_from_records(model.spec, records)
    inputs["tailnum"] = _hashed(inputs["tailnum"].to_pylist())
    expected = model.predict_columns(inputs, len(records))
    assert [p["probability"] for p in body["predictions"]] == pytest.approx(list(expected), abs=1e-12)
    assert [p["class"] for p in body["predictions"]] == [int(p >= 0.5) for p in expected]


def _version_1(folder: Path) -> ServingModel:
    """The serving model registered as version 1 (the same booster, written again), loaded in this process."""
    return ServingModel.load(serving.write_xgboost(folder, serving.SPEC, serving.booster(1)))


def _hashed(values):
    import pyarrow as pa

    return pa.array([hmac.new(TEST_PII_KEY.encode(), v.encode(), hashlib.sha256).hexdigest() for v in values])


def test_records_are_checked_against_the_models_inputs(service):
    server = service["server"]
    missing = {k: v for k, v in RECORD.items() if k != "distance"}
    status, body, _ = _predict(service, [RECORD, missing])
    assert (status, body["field"], body["expected"]) == (422, "distance", "number")
    assert body["error"] == "record 1: field 'distance' is missing: expected number or null"
    status, body, _ = _predict(service, [{**RECORD, "sched_dep_time": "17:15"}])
    assert status == 422 and body["error"] == "record 0: field 'sched_dep_time' is str \"17:15\": expected integer or null"
    status, body, _ = _predict(service, [{**RECORD, "carrier": 7}])
    assert (status, body["field"], body["expected"]) == (422, "carrier", "string")
    assert _predict(service, [RECORD] * 6)[1]["error"] == "6 records; at most 5 per request (serve.max_records)"
    assert _predict(service, [])[0] == 422
    path = f"/v1/models/{MODEL}/predict"
    status, body, _ = server.call("POST", path, b'{"records": [', KEYS["alice"])
    assert status == 400 and body["error"].startswith("the body is not JSON: ")
    status, body, _ = server.call("POST", path, b"x" * 5000, KEYS["alice"])
    assert status == 413 and "limit is 4096 (serve.max_body_bytes)" in body["error"]
    assert _predict(service, [RECORD], KEYS["carol"], model="another_model")[0] == 404  # carol may, but not here


def test_a_key_over_its_rate_gets_429_with_retry_after(service):
    statuses = [_predict(service, [RECORD], KEYS["bob"]) for _ in range(5)]
    assert [s for s, _, _ in statuses][:3] == [200, 200, 200]
    refused = [(b, h) for s, b, h in statuses if s == 429]
    assert refused and int(refused[0][1]["retry-after"]) >= 1
    assert refused[0][0]["error"].startswith("caller 'bob' is over its rate limit; retry in ")


def test_a_new_champion_is_picked_up_without_dropping_requests(service):
    statuses, stop = [], threading.Event()
    seen: list[list[int]] = [[] for _ in range(4)]  # each client's versions, in the order it got its answers

    def hammer(mine):
        while not stop.is_set():
            status, body, _ = _predict(service, [RECORD])
            statuses.append(status)
            mine.append(body.get("version"))

    threads = [threading.Thread(target=hammer, args=(mine,)) for mine in seen]
    for thread in threads:
        thread.start()
    try:
        serving.register(service["tracking"], MODEL, service["tmp"] / "v2", seed=2)
        service["server"].wait_for(lambda: all(2 in mine for mine in seen))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert set(statuses) == {200}, statuses
    for mine in seen:  # a client that got version 2 never gets version 1 again
        assert mine[0] == 1 and mine[-1] == 2
        assert mine[mine.index(2):] == [2] * (len(mine) - mine.index(2)), mine


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(service):
    server = service["server"]
    serving.register(service["tracking"], MODEL, service["tmp"] / "v3", seed=3, broken=True)
    ready = server.wait_for(lambda: (r := server.call("GET", "/readyz")[1]).get("last_error") and r)
    assert ready["status"] == "ready" and ready["version"] == 2
    assert ready["last_error"].startswith(f"version 3 of '{MODEL}' (models:/")
    assert "failed to load: XGBoostError" in ready["last_error"]
    assert _predict(service, [RECORD])[1]["version"] == 2
    server.log_after("still serving version 2")


def test_metrics_count_requests_by_code_and_show_the_version(service):
    status, body, _ = service["server"].call("GET", "/metrics")
    text = body["text"]
    assert status == 200
    for code in ("200", "401", "403", "413", "422", "429", "400"):
        assert re.search(rf'lakeforge_serve_requests_total{{code="{code}",route="predict"}} [1-9]', text), code
    assert f'lakeforge_serve_model_version{{model="{MODEL}"}} 2.0' in text
    assert f'lakeforge_serve_model_load_failures{{model="{MODEL}"}} 1.0' in text
    assert 'lakeforge_serve_request_seconds_bucket{le="0.02",route="predict"}' in text


def test_every_served_record_is_in_the_inference_log_after_a_clean_shutdown(service):
    server = service["server"]
    table = Path(service["tmp"]) / "lakehouse" / "monitoring" / "inference_log"
    server.wait_for(lambda: (table / "_delta_log").is_dir(), timeout=30)  # written in the background already
    assert server.stop() == 0
    frame = deltalake.DeltaTable(str(table)).to_pandas()
    assert len(frame) == service["served"]
    assert set(frame["tailnum"]) == {hmac.new(TEST_PII_KEY.encode(), b"N14228", hashlib.sha256).hexdigest()}
    assert "N14228" not in "".join(p.read_text(errors="ignore") for p in table.rglob("*.json"))
    assert set(frame["model_version"]) == {1, 2} and set(frame["caller"]) <= {"alice", "bob", "svc-booking"}
    assert frame["probability"].between(0, 1).all() and set(frame["predicted_class"]) <= {0, 1}
    assert frame["sched_dep_hour"].tolist() == [int(t) // 100 for t in frame["sched_dep_time"]]
    assert frame["batch_id"].nunique() >= 2 and frame["request_id"].nunique() < len(frame)


def test_the_inference_log_writes_after_flush_seconds_without_waiting_for_rows(tmp_path):
    import pyarrow as pa

    from lakeforge.serve.inference_log import InferenceLog

    log = InferenceLog(str(tmp_path / "log"), flush_rows=1000, flush_seconds=0.3, max_buffer_rows=3)
    try:
        log.add(pa.table({"x": [1, 2]}))
        log.add(pa.table({"x": [3, 4]}))  # over max_buffer_rows: dropped and counted, never blocking
        deadline = time.monotonic() + 10
        while log.written_rows == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (log.written_rows, log.dropped_rows) == (2, 2)
        assert deltalake.DeltaTable(str(tmp_path / "log")).to_pandas()["x"].tolist() == [1, 2]
    finally:
        log.close()


def test_mlflow_models_serve_loads_the_serving_model_without_lakeforge_serve(service, tmp_path):
    """The version's serving model under MLflow's own model server (``--env-manager local``): the lakeforge
    package comes from the model's code_paths; the answers are the in-process serving model's (MLflow's server has
    no PII key: a PII field is sent as its hash)."""
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    from mlflow.tracking import MlflowClient

    from tests.support.standalone import free_port

    client = MlflowClient(service["tracking"], service["tracking"])
    uri = client.get_model_version(MODEL, "1").tags["serving_model_uri"]
    records = [RECORD, {**RECORD, "carrier": "ZZ", "tailnum": None, "distance": None}]
    sent = [{**r, "tailnum": _hashed([r["tailnum"]])[0].as_py() if r["tailnum"] else None} for r in records]
    port = free_port()
    bin_dir = Path(sys.executable).parent  # mlflow starts uvicorn from PATH
    process = subprocess.Popen(
        [str(bin_dir / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
         "-p", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": service["tracking"],
             "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    try:
        deadline, answer = time.monotonic() + 180, None
        while answer is None and process.poll() is None and time.monotonic() < deadline:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", headers={
                "Content-Type": "application/json"}, data=json.dumps({"dataframe_records": sent}).encode())
            try:
                answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
            except OSError:
                time.sleep(0.5)
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
    assert answer is not None, output[-3000:]
    model = _version_1(tmp_path / "expected")
    expected = model.predict_columns(columns_from_records(model.spec, sent), len(sent))
    assert answer["predictions"] == pytest.approx(list(expected), abs=1e-7)


def test_connections_to_the_service_socket_have_nagle_off():
    """asyncio sets TCP_NODELAY on a connection only when its socket's protocol says TCP; with Nagle on, every
    response after the first on a keep-alive connection waited about 40 ms for the client's delayed ACK."""
    import asyncio
    import socket

    from lakeforge.serve import listening_socket

    async def accept_one() -> int:
        seen = asyncio.get_running_loop().create_future()

        async def handler(reader, writer):
            seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        sock = listening_socket("127.0.0.1", 0)
        server = await asyncio.start_server(handler, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname())
            nodelay = await asyncio.wait_for(seen, 10)
            writer.close()
        return nodelay

    assert asyncio.run(accept_one()) != 0
