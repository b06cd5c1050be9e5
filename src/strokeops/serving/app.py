"""The FastAPI application: ``create_app(settings)`` wires the model store, the prediction log,
metrics and the routers."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect

from strokeops import __version__
from strokeops.config import Settings
from strokeops.serving.auth import ApiKeyMiddleware, document_api_key
from strokeops.serving.errors import client_disconnect_handler, validation_error_handler
from strokeops.serving.limits import RequestLimitsMiddleware
from strokeops.serving.metrics import ApiMetrics, MetricsMiddleware
from strokeops.serving.model_store import ModelStore
from strokeops.serving.prediction_log import PredictionLog
from strokeops.serving.routes import admin, health, model, page, predict
from strokeops.serving.schemas import patient_json_schema

log = logging.getLogger(__name__)

REGISTRY_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def create_app(
    settings: Settings,
    *,
    model_store: ModelStore | None = None,
    prediction_log: PredictionLog | None = None,
) -> FastAPI:
    """A new app; the model loads and the log writer starts when the app starts."""
    # a registry check must fail fast: the loaded model keeps serving meanwhile
    for name, value in REGISTRY_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    store = model_store or ModelStore(settings)
    writer = prediction_log or PredictionLog(
        settings.prediction_log_uri,
        buffer_rows=settings.log_buffer_rows,
        batch_rows=settings.log_batch_rows,
        flush_seconds=settings.log_flush_seconds,
    )
    metrics = ApiMetrics()
    metrics.gauge_function(
        "strokeops_prediction_log_backlog",
        "Prediction rows not yet written.",
        lambda: writer.backlog,
    )
    metrics.gauge_function(
        "strokeops_prediction_log_dropped",
        "Prediction rows dropped (buffer full).",
        lambda: writer.dropped,
    )
    metrics.gauge_function(
        "strokeops_registry_reachable",
        "1 if the last registry check succeeded.",
        lambda: float(store.registry_reachable),
    )
    metrics.gauge_function(
        "strokeops_model_loads", "Model versions loaded since start.", lambda: store.swaps
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.api_key_list:
            log.warning("no API keys configured (STROKEOPS_API_KEYS): the API is open to anyone")
        writer.start()
        store.refresh()
        if store.current is None:
            log.warning("no %s model to serve yet; polling the registry", settings.model_alias)
        store.start_polling()
        try:
            yield
        finally:
            store.stop()
            writer.stop()

    app = FastAPI(
        title="strokeops",
        version=__version__,
        summary="Calibrated stroke-risk predictions from the registry's champion model.",
        lifespan=lifespan,
        # no 307 from /v1/predict/ to /v1/predict: its Location would be built from the
        # client's Host header, and a POST body is not re-sent by every client
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.model_store = store
    app.state.prediction_log = writer
    app.state.metrics = metrics
    for router in (predict.router, model.router, admin.router, health.router, page.router):
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(ClientDisconnect, client_disconnect_handler)
    # the last added runs first: metrics see every answer, the key is checked before the limits
    app.add_middleware(RequestLimitsMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, keys=settings.api_key_list)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    _complete_openapi(app)
    return app


def _complete_openapi(app: FastAPI) -> None:
    """Generate the OpenAPI schema as usual, then add what FastAPI cannot see: the API-key
    scheme (a middleware) and the Patient schema (the prediction routes parse their bodies).
    HEAD is left out: it is GET without the body, and FastAPI would give both the same
    operation id (a route has one), which OpenAPI forbids."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
                schema = generate()
            for operations in schema["paths"].values():
                operations.pop("head", None)
            schema = document_api_key(schema)
            schema["components"].setdefault("schemas", {})["Patient"] = patient_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory``: settings from STROKEOPS_* variables."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return create_app(Settings())
