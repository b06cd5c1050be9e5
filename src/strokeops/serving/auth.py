"""API-key authentication for the data and admin endpoints."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status
from fastapi.security import APIKeyHeader

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def key_is_valid(given: str | None, keys: tuple[str, ...]) -> bool:
    """Constant-time comparison against every configured key."""
    if given is None:
        return False
    given_bytes = given.encode()
    matches = [hmac.compare_digest(given_bytes, key.encode()) for key in keys]
    return any(matches)


def require_api_key(request: Request, api_key: str | None) -> None:
    keys: tuple[str, ...] = request.app.state.api_keys
    if keys and not key_is_valid(api_key, keys):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key (header X-API-Key)",
            headers={"WWW-Authenticate": "APIKey"},
        )
