"""Error responses: 422 bodies that name each bad field and are always valid JSON."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ECHO_CHARS = 100


def json_safe(value: Any) -> Any:
    """The value as it may go back to the client: NaN and infinities spelled as strings (JSON
    has no such numbers), long strings cut (a 50 MB field must not come back as 50 MB)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and len(value) > MAX_ECHO_CHARS:
        return f"{value[:MAX_ECHO_CHARS]}… ({len(value)} characters)"
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = [
        {
            "type": error["type"],
            "loc": [json_safe(part) for part in error["loc"]],
            "msg": error["msg"],
            "input": json_safe(error.get("input")),
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)
