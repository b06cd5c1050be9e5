"""The risk-calculator page: plain HTML and a little JavaScript, no build step."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from strokeops.serving.routes import GET_AND_HEAD

router = APIRouter(include_in_schema=False)


@cache
def _page() -> str:
    return resources.files("strokeops.serving").joinpath("static/index.html").read_text()


@router.api_route("/", methods=GET_AND_HEAD, response_class=HTMLResponse)
async def risk_calculator() -> str:
    return _page()
