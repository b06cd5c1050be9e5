"""DirectRoute: FastAPI documents the route, Starlette calls the endpoint directly."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.testclient import TestClient

from strokeops.serving.routes.direct import DirectRoute


def test_an_endpoint_that_takes_only_the_request_is_called_directly() -> None:
    router = APIRouter(route_class=DirectRoute)

    @router.post("/echo", summary="Echo the body")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="text/plain")

    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as client:
        assert client.post("/echo", content=b"hello").text == "hello"
        not_allowed = client.get("/echo")
        assert (not_allowed.status_code, not_allowed.headers["allow"]) == (405, "POST")
        assert client.get("/openapi.json").json()["paths"]["/echo"]["post"]["summary"] == (
            "Echo the body"
        )


def test_an_endpoint_with_other_parameters_is_refused() -> None:
    router = APIRouter(route_class=DirectRoute)

    with pytest.raises(TypeError, match="echo must take only the Request to be a DirectRoute"):

        @router.post("/echo")
        async def echo(request: Request, name: str) -> Response:
            return Response(name)
