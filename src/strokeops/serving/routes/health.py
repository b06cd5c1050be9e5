"""Liveness, readiness and Prometheus metrics: open, no API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from strokeops.serving.deps import MetricsDep, PredictionLogDep, StoreDep
from strokeops.serving.routes import GET_AND_HEAD

router = APIRouter(tags=["health"])


@router.api_route("/health/live", methods=GET_AND_HEAD)
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.api_route(
    "/health/ready",
    methods=GET_AND_HEAD,
    responses={503: {"description": "No model loaded yet."}},
)
async def ready(store: StoreDep, prediction_log: PredictionLogDep) -> JSONResponse:
    model = store.current
    details: dict[str, Any] = {
        "status": "ready" if model else "not ready",
        "model": {"name": model.name, "version": model.version} if model else None,
        "registry": {
            "reachable": store.registry_reachable,
            "last_check": store.last_check,
            "error": store.last_error,
        },
        "prediction_log": {
            "database_up": prediction_log.database_up,
            "backlog": prediction_log.backlog,
            "written": prediction_log.written,
            "dropped": prediction_log.dropped,
        },
    }
    code = status.HTTP_200_OK if model else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(details, status_code=code)


@router.api_route("/metrics", methods=GET_AND_HEAD, include_in_schema=False)
async def prometheus_metrics(request: Request, metrics: MetricsDep) -> Response:
    model = request.app.state.model_store.current
    if model is not None:
        metrics.model_version.labels(model.name).set(float(model.version))
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
