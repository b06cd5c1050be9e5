"""Typed dependencies of the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status

from strokeops.config import Settings
from strokeops.serving.auth import api_key_header, require_api_key
from strokeops.serving.metrics import ApiMetrics
from strokeops.serving.model_store import ModelStore, ServingModel
from strokeops.serving.prediction_log import PredictionLog

# every dependency is async: a plain `def` would be run in FastAPI's thread pool, a thread
# round trip per dependency per request, which halved throughput in bench/serve.py


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> ModelStore:
    return request.app.state.model_store


async def get_model(request: Request) -> ServingModel:
    """The model answering this request: read once, so a swap cannot split a request."""
    model = request.app.state.model_store.current
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded yet")
    return model


async def get_prediction_log(request: Request) -> PredictionLog:
    return request.app.state.prediction_log


async def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


@dataclass(frozen=True, slots=True)
class Scoring:
    """What a prediction needs, gathered by one dependency (each one costs per request)."""

    model: ServingModel
    prediction_log: PredictionLog
    metrics: ApiMetrics


async def get_scoring(request: Request) -> Scoring:
    state = request.app.state
    return Scoring(await get_model(request), state.prediction_log, state.metrics)


async def authenticate(
    request: Request, api_key: Annotated[str | None, Security(api_key_header)]
) -> None:
    require_api_key(request, api_key)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
ModelDep = Annotated[ServingModel, Depends(get_model)]
PredictionLogDep = Annotated[PredictionLog, Depends(get_prediction_log)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
ScoringDep = Annotated[Scoring, Depends(get_scoring)]
Authenticated = Depends(authenticate)
