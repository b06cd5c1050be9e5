"""A route class for endpoints that take the ``Request`` and return a ``Response`` themselves.

FastAPI wraps every endpoint in its own handler: it solves the endpoint's dependencies, opens
two ``AsyncExitStack``s for dependencies with ``yield`` and serializes the return value. An
endpoint that reads and validates its own body (the prediction routes, see ``predict.py``)
needs none of that, yet paid for it on every request (about a tenth of the single-row path).
``DirectRoute`` keeps everything FastAPI builds from the declaration (OpenAPI operation,
path matching, 405 for other methods) and has Starlette call the endpoint directly, as it
does for its own routes; exception handlers apply as before.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.routing import request_response


class DirectRoute(APIRoute):
    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        parameters = list(inspect.signature(endpoint).parameters.values())
        if len(parameters) != 1 or parameters[0].annotation not in (Request, "Request"):
            raise TypeError(f"{endpoint.__name__} must take only the Request to be a DirectRoute")
        super().__init__(path, endpoint, **kwargs)
        self.app = request_response(endpoint)
