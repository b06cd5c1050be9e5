"""The served model: loaded from the registry alias, swapped atomically when the alias moves.

A request reads ``store.current`` once and uses that object throughout, so a swap (one
attribute assignment) can never mix two versions within a request.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from strokeops.config import Settings
from strokeops.redaction import without_credentials
from strokeops.scoring import ESTIMATOR, Scorer

log = logging.getLogger(__name__)

SERVED_METRICS = (
    "cv_roc_auc_mean",
    "cv_pr_auc_mean",
    "cv_brier_mean",
    "holdout_roc_auc",
    "holdout_pr_auc",
    "holdout_brier",
    "holdout_recall",
    "holdout_precision",
)


@dataclass(frozen=True)
class ServingModel:
    name: str
    version: str
    alias: str
    scorer: Scorer
    threshold: float
    risk_levels: dict[str, float]
    family: str | None = None
    data_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def risk_level(self, probability: float) -> str:
        if probability >= self.risk_levels["high"]:
            return "high"
        if probability >= self.risk_levels["elevated"]:
            return "elevated"
        return "low"


def load_version(settings: Settings, alias: str) -> ServingModel:
    """Resolve ``alias`` in the registry and load that version's verified compiled form."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_uri)
    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    version = client.get_model_version_by_alias(settings.model_name, alias)
    compiled_uri = version.tags.get("strokeops.compiled_uri")
    if not compiled_uri:
        raise ValueError(f"version {version.version} has no verified compiled form")
    spec = mlflow.artifacts.load_dict(compiled_uri)
    estimator_proba = None
    if spec["model"]["kind"] == ESTIMATOR:
        model = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version.version}")
        classifier = model.named_steps["classifier"]
        estimator_proba = lambda X: classifier.predict_proba(X)[:, 1]  # noqa: E731
    run_metrics: dict[str, Any] = {}
    if run_id := version.tags.get("strokeops.candidate_run_id"):
        run_metrics = client.get_run(run_id).data.metrics
    return ServingModel(
        name=settings.model_name,
        version=str(version.version),
        alias=alias,
        scorer=Scorer(spec, estimator_proba=estimator_proba),
        threshold=spec["threshold"],
        risk_levels=spec["risk_levels"],
        family=version.tags.get("strokeops.family"),
        data_version=version.tags.get("strokeops.data_version"),
        metrics={k: float(run_metrics[k]) for k in SERVED_METRICS if k in run_metrics},
    )


class ModelStore:
    """Holds the current model; ``refresh`` loads the alias's version when it changed."""

    def __init__(self, settings: Settings, loader=load_version) -> None:
        self.settings = settings
        self._loader = loader
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: ServingModel | None = None
        self.registry_reachable = False
        self.last_error: str | None = None
        self.last_check: str | None = None
        self.swaps = 0

    def refresh(self) -> bool:
        """Load the alias's version if it differs from the current one; True if swapped.

        On any failure the current model keeps serving and the error is recorded.
        """
        with self._lock:
            self.last_check = datetime.now(UTC).isoformat()
            try:
                candidate = self._resolve_and_load()
            except Exception as exc:  # the registry, the network or the artifact store
                self.registry_reachable = False
                # the registry's URL may carry a password; the error goes to /health/ready
                self.last_error = without_credentials(f"{type(exc).__name__}: {exc}")
                log.warning("model refresh failed, keeping the loaded model: %s", self.last_error)
                return False
            self.registry_reachable, self.last_error = True, None
            if candidate is None:
                return False
            previous = self.current
            self.current = candidate
            self.swaps += 1
            # the loaded libraries and model are long-lived: move them out of the collector's
            # way, so a full collection no longer pauses a request for 100-200 ms
            gc.collect()
            gc.freeze()
            log.info(
                "serving %s version %s (was %s)",
                candidate.name,
                candidate.version,
                previous.version if previous else "none",
            )
            return True

    def _resolve_and_load(self) -> ServingModel | None:
        from mlflow import MlflowClient

        alias = self.settings.model_alias
        if self.current is not None and self._loader is load_version:
            client = MlflowClient(self.settings.mlflow_uri, self.settings.mlflow_uri)
            version = client.get_model_version_by_alias(self.settings.model_name, alias)
            if str(version.version) == self.current.version:
                return None
        candidate = self._loader(self.settings, alias)
        if self.current is not None and candidate.version == self.current.version:
            return None
        return candidate

    def start_polling(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.model_poll_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
