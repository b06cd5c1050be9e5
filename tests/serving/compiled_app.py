"""A real model served by the real app, without MLflow: for tests of the HTTP layer.

The model is a calibrated logistic regression fitted on generated patients, compiled and
verified as at registration; the app loads it through ``ModelStore``'s loader hook instead
of the registry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from sklearn.pipeline import Pipeline

from strokeops.compile import compile_pipeline, verify
from strokeops.config import Settings
from strokeops.features import feature_frame, target
from strokeops.models import build_pipeline
from strokeops.scoring import Scorer
from strokeops.serving.app import create_app
from strokeops.serving.model_store import ModelStore, ServingModel
from strokeops.synthetic import generate_patients

MODEL_VERSION = "7"


def fitted_model(rows: int = 2000, seed: int = 1) -> tuple[Pipeline, dict[str, Any]]:
    """A fitted candidate Pipeline and its verified compiled spec."""
    frame = generate_patients(rows, seed=seed)
    pipeline = build_pipeline(
        "logistic_regression", {"C": 1.0, "class_weight": None}, seed=0, threshold=0.1
    )
    pipeline.fit(feature_frame(frame), target(frame))
    spec = compile_pipeline(pipeline, frame)
    verify(spec, pipeline, frame)
    return pipeline, spec


def serving_model(spec: dict[str, Any], alias: str = "champion") -> ServingModel:
    return ServingModel(
        name="stroke-risk",
        version=MODEL_VERSION,
        alias=alias,
        scorer=Scorer(spec),
        threshold=spec["threshold"],
        risk_levels=spec["risk_levels"],
        family="logistic_regression",
    )


def model_store(settings: Settings, spec: dict[str, Any]) -> ModelStore:
    """A store whose every registry check finds this model."""
    return ModelStore(settings, loader=lambda _settings, alias: serving_model(spec, alias))


@contextmanager
def running_app(settings: Settings, spec: dict[str, Any]) -> Iterator[str]:
    """The app under uvicorn on a free port in a background thread; yields its base URL."""
    app = create_app(settings, model_store=model_store(settings, spec))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started or not thread.is_alive():
                break
            thread.join(timeout=0.05)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"
