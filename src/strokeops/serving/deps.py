"""Typed dependencies of the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status

from strokeops.config import Settings
from strokeops.serving.auth import api_key_header, require_api_key
from strokeops.serving.metrics import ApiMetrics
from strokeops.serving.model_store import ModelStore, ServingModel
from strokeops.serving.prediction_log import PredictionLog


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ModelStore:
    return request.app.state.model_store


def get_model(request: Request) -> ServingModel:
    """The model answering this request: read once, so a swap cannot split a request."""
    model = request.app.state.model_store.current
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded yet")
    return model


def get_prediction_log(request: Request) -> PredictionLog:
    return request.app.state.prediction_log


def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


def authenticate(
    request: Request, api_key: Annotated[str | None, Security(api_key_header)]
) -> None:
    require_api_key(request, api_key)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
ModelDep = Annotated[ServingModel, Depends(get_model)]
PredictionLogDep = Annotated[PredictionLog, Depends(get_prediction_log)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
Authenticated = Depends(authenticate)
