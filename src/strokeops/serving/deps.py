"""Typed dependencies of the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from strokeops.config import Settings
from strokeops.serving.metrics import ApiMetrics
from strokeops.serving.model_store import ModelStore, ServingModel
from strokeops.serving.prediction_log import PredictionLog

# every dependency is async: a plain `def` would be run in FastAPI's thread pool, a thread
# round trip per dependency per request, which halved throughput in bench/serve.py. The
# prediction routes call ``scoring_for`` directly: each dependency FastAPI resolves costs
# about 10 µs per request, a measurable share of a 60 µs request.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> ModelStore:
    return request.app.state.model_store


def current_model(request: Request) -> ServingModel:
    """The model answering this request: read once, so a swap cannot split a request."""
    model = request.app.state.model_store.current
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded yet")
    return model


async def get_model(request: Request) -> ServingModel:
    return current_model(request)


async def get_prediction_log(request: Request) -> PredictionLog:
    return request.app.state.prediction_log


async def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


@dataclass(frozen=True, slots=True)
class Scoring:
    """What a prediction needs: the model answering this request, the log and the metrics."""

    model: ServingModel
    prediction_log: PredictionLog
    metrics: ApiMetrics
    settings: Settings


def scoring_for(request: Request) -> Scoring:
    state = request.app.state
    return Scoring(current_model(request), state.prediction_log, state.metrics, state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
ModelDep = Annotated[ServingModel, Depends(get_model)]
PredictionLogDep = Annotated[PredictionLog, Depends(get_prediction_log)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
