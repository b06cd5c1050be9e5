"""Prometheus metrics of the API, and the ASGI middleware that times every request."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    """One registry per app, so tests and several apps in a process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple, object] = {}
        self.requests = Counter(
            "strokeops_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "strokeops_http_request_duration_seconds",
            "Time to answer, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "strokeops_predictions",
            "Patients scored, by risk level and model version.",
            ["risk_level", "model_version"],
            registry=self.registry,
        )
        self.model_version = Gauge(
            "strokeops_serving_model_version",
            "The registry version of the model that answers.",
            ["model_name"],
            registry=self.registry,
        )

    def count_predictions(self, risk_level: str, model_version: str, count: int = 1) -> None:
        self._child(self.predictions, risk_level, model_version).inc(count)

    def observe_request(self, route: str, method: str, status: str, seconds: float) -> None:
        self._child(self.latency, route).observe(seconds)
        self._child(self.requests, route, method, status).inc()

    def _child(self, metric, *labels: str):
        """``metric.labels(*labels)``, cached: the lookup costs more than the update."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def gauge_function(self, name: str, documentation: str, function: Callable[[], float]) -> None:
        """A gauge read when scraped (buffer backlog, registry reachability …)."""
        Gauge(name, documentation, registry=self.registry).set_function(function)


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The template of the route that served the request (``/v1/predict``, never a raw path,
    so that labels stay few), also for requests a middleware answered before routing."""
    route = scope.get("route")
    if route is None:
        route = next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
    return getattr(route, "path", "unmatched")


class MetricsMiddleware:
    """Counts and times requests by route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.observe_request(
                route_template(scope, self.routes),
                scope["method"],
                str(status),
                time.perf_counter() - started,
            )
