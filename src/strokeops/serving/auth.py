"""API-key authentication for the data and admin endpoints (everything under ``/v1/``).

It is an ASGI middleware rather than a FastAPI dependency for two reasons: it answers 401 before
the body is read or validated (a client without a key learns nothing about its body), and it
costs no dependency resolution per request (a third of the single-row path's time when it was
a ``Security`` dependency; see bench/serve.py). ``document_api_key`` adds the scheme to the
OpenAPI schema, so the docs page offers its "Authorize" button as before.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from strokeops.serving.headers import header_values

API_KEY_HEADER = "X-API-Key"
PROTECTED_PREFIX = "/v1/"
SCHEME_NAME = "APIKeyHeader"
UNAUTHORIZED_DETAIL = f"missing or invalid API key (header {API_KEY_HEADER})"
_HEADER_KEY = API_KEY_HEADER.lower().encode()
_UNAUTHORIZED_BODY = orjson.dumps({"detail": UNAUTHORIZED_DETAIL})


def key_is_valid(given: list[bytes], keys: tuple[bytes, ...]) -> bool:
    """Exactly one key was sent and it is one of ``keys``: compared in constant time with
    every configured key (no early exit on a match)."""
    if len(given) != 1:
        return False
    [given_key] = given
    matches = [hmac.compare_digest(given_key, key) for key in keys]
    return any(matches)


class ApiKeyMiddleware:
    """401 for a ``/v1/`` request without a configured key; everything else passes.

    With no keys configured the API is open (the embedded default; the app logs a warning).
    """

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        self.app = app
        self.keys = tuple(key.encode() for key in keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.keys
            and scope["type"] == "http"
            and scope["path"].startswith(PROTECTED_PREFIX)
            and not key_is_valid(header_values(scope, _HEADER_KEY), self.keys)
        ):
            await send_unauthorized(send)
            return
        await self.app(scope, receive, send)


async def send_unauthorized(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_UNAUTHORIZED_BODY)).encode()),
                (b"www-authenticate", b"APIKey"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAUTHORIZED_BODY})


def document_api_key(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema with the API-key scheme required on every ``/v1/`` operation."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME_NAME] = {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "One of STROKEOPS_API_KEYS (not required when none is configured).",
    }
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(PROTECTED_PREFIX):
            continue
        for operation in operations.values():
            operation["security"] = [{SCHEME_NAME: []}]
            operation.setdefault("responses", {})["401"] = {"description": UNAUTHORIZED_DETAIL}
    return schema
