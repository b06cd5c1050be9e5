"""Request headers read straight from the ASGI scope (no ``Headers`` object per request)."""

from __future__ import annotations

from starlette.types import Scope


def header_value(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a header (ASGI gives names in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def header_values(scope: Scope, name: bytes) -> list[bytes]:
    """Every value of a header, in order."""
    return [value for key, value in scope["headers"] if key == name]
