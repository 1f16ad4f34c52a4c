"""The model the service answers with follows the registry: the version behind ``serve.alias`` (``champion``) is
loaded at start and whenever the alias moves. The swap is one reference assignment, so a request in flight finishes
on the model it started with and none is dropped; a version that fails to load leaves the old one serving, and the
failure is kept for ``/readyz`` and the log."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lakeforge.models.serving import SERVING_URI_TAG, SPEC_FILE, UNAVAILABLE_TAG, ServingModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    run_id: str | None
    model: ServingModel
    loaded_at: float


class ModelFollower:
    """Holds the served model; ``refresh()`` checks the alias once, ``start()`` keeps checking in a thread."""

    def __init__(self, client: MlflowClient, name: str, alias: str, cache_dir: Path, poll_seconds: float):
        self.client, self.name, self.alias = client, name, alias
        self.cache_dir, self.poll_seconds = cache_dir, poll_seconds
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.load_failures = 0
        self._failed_version: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list = []

    def on_change(self, listener) -> None:
        """``listener(loaded)`` after each successful load (metrics)."""
        self._listeners.append(listener)

    def refresh(self) -> bool:
        """Load the alias's version when it is not the one served; True when a new version was loaded."""
        try:
            mv = self.client.get_model_version_by_alias(self.name, self.alias)
        except MlflowException as exc:
            self._fail(None, f"model '{self.name}' has no alias '{self.alias}' in the registry "
                             f"({exc.message.splitlines()[0]}); train and promote a version first")
            return False
        version = int(mv.version)
        if self.current is not None and self.current.version == version:
            return False
        if version == self._failed_version:
            return False  # tried and failed; the error stands until the alias moves
        uri = mv.tags.get(SERVING_URI_TAG)
        if not uri:
            reason = mv.tags.get(UNAVAILABLE_TAG) or ("no Spark-free serving model was logged with it (trained by a "
                                                      "lakeforge without serving); retrain it")
            self._fail(version, f"version {version} of '{self.name}' cannot be served: {reason}")
            return False
        try:
            model = self._load(uri, version)
        except Exception as exc:  # noqa: BLE001 - any failure to load keeps the old model serving
            self._fail(version, f"version {version} of '{self.name}' ({uri}) failed to load: "
                                f"{type(exc).__name__}: {exc}")
            return False
        previous = self.current
        self.current = LoadedModel(self.name, version, mv.run_id, model, time.time())
        self.last_error, self._failed_version = None, None
        log.info("serving %s version %s (alias %s)%s", self.name, version, self.alias,
                 f", replacing version {previous.version}" if previous else "")
        for listener in self._listeners:
            listener(self.current)
        return True

    def _load(self, uri: str, version: int) -> ServingModel:
        target = self.cache_dir / f"v{version}"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target)))
        specs = sorted(local.rglob(SPEC_FILE))
        if not specs:
            raise FileNotFoundError(f"no {SPEC_FILE} under {uri}")
        return ServingModel.load(specs[0].parent)

    def _fail(self, version: int | None, message: str) -> None:
        if message != self.last_error:
            log.error("%s%s", message, f"; still serving version {self.current.version}" if self.current else "")
        self.last_error, self._failed_version = message, version
        self.load_failures += 1 if version is not None else 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lakeforge-model-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the follower must outlive a registry hiccup
                log.exception("checking alias %s of %s failed", self.alias, self.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
