"""Tracking: MLflow set-up, run provenance and model logging.

Nothing happens at import; ``connect`` points MLflow at the configured store (a local SQLite
file by default) and makes sure the experiment exists.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline
from skops.io import dumps, get_untrusted_types

from strokeops import __version__
from strokeops.config import Settings
from strokeops.errors import NotFoundError, TrainingError

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
TRACKED_PACKAGES = ("strokeops", "scikit-learn", "pandas", "numpy", "optuna", "mlflow", "skops")
# what the logged model needs at load time, stated so MLflow need not infer it (about 6 s)
MODEL_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "skops", "scipy")

TAG_FAMILY = "strokeops.family"
TAG_ROLE = "strokeops.role"
TAG_DATA_VERSION = "strokeops.data_version"
TAG_FINGERPRINT = "strokeops.fingerprint"
TAG_MODEL_URI = "strokeops.model_uri"


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking store and select the experiment."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    if settings.mlflow_uri.startswith("sqlite:"):
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    client = MlflowClient()
    if client.get_experiment_by_name(settings.experiment_name) is None:
        local_store = not settings.mlflow_uri.startswith(("http://", "https://"))
        client.create_experiment(
            settings.experiment_name,
            artifact_location=settings.artifact_location if local_store else None,
        )
    mlflow.set_experiment(settings.experiment_name)
    return client


def get_run(client: MlflowClient, run_id: str) -> mlflow.entities.Run:
    """The run, or ``NotFoundError`` naming the id."""
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        raise NotFoundError(f"no MLflow run with id {run_id!r}") from exc


def code_version() -> str | None:
    """The git commit of the code, when it runs from a checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["strokeops"] = __version__
    return versions


def _requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in MODEL_REQUIREMENTS]


def log_model(
    model: Pipeline, input_example: pd.DataFrame, *, model_metadata: dict[str, Any]
) -> str:
    """Log the Pipeline (skops format) with signature and input example; return its model URI."""
    probabilities = model.predict_proba(input_example)
    with warnings.catch_warnings():
        # the binary columns are integers and never missing: MLflow's hint does not apply
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(input_example, probabilities)
    if signature.inputs is None or signature.outputs is None:
        raise TrainingError("MLflow could not infer a model signature from the input example")
    info = mlflow.sklearn.log_model(
        model,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=input_example,
        pip_requirements=_requirements(),
        serialization_format="skops",
        skops_trusted_types=get_untrusted_types(data=dumps(model)),
        pyfunc_predict_fn="predict_proba",
        metadata=model_metadata,
    )
    return info.model_uri


def flat_metrics(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric entries of a (possibly nested) metrics dict, as MLflow metric names."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat |= flat_metrics(f"{key}_", value)
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            flat[f"{key}_low"], flat[f"{key}_high"] = float(value[0]), float(value[1])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat
