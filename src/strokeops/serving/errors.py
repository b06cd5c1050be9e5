"""Error responses: 422 bodies that name each bad field, stay small and are always valid JSON.

A 422 says where each problem is (``loc``), what it is (``type``, ``msg``) and, for a single
bad value, what was sent (``input``). It never echoes a whole object, list or raw body back:
a missing field's ``input`` would be the entire patient and an unparsable body's the entire
body, so a 15 MB request could come back as hundreds of megabytes. At most
``MAX_REPORTED_ERRORS`` errors are listed; a last entry says how many more there were.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499
MAX_ECHO_CHARS = 100
MAX_REPORTED_ERRORS = 50
BINARY_FIELDS = frozenset({"hypertension", "heart_disease"})
RESIDENCE_SPELLINGS = frozenset({"residence_type", "Residence_type"})
_NO_INPUT = object()  # an error of ours that names no sent value


def json_safe(value: Any) -> Any:
    """A scalar as it may go back to the client: NaN and infinities spelled as strings (JSON
    has no such numbers), long strings cut (a 50 MB field must not come back as 50 MB)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and len(value) > MAX_ECHO_CHARS:
        return f"{value[:MAX_ECHO_CHARS]}… ({len(value)} characters)"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)[:MAX_ECHO_CHARS]


def _clearer_message(error: dict[str, Any]) -> str:
    """pydantic's message, reworded where it would mislead about this API's schema."""
    field = error["loc"][-1] if error["loc"] else None
    if error["type"] == "literal_error" and field in BINARY_FIELDS:
        return "Input should be 0, 1, false or true"
    if error["type"] == "extra_forbidden" and field in RESIDENCE_SPELLINGS:
        return "send residence_type or its alias Residence_type, not both"
    return error["msg"]


def reported(errors: Iterable[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    """The first ``MAX_REPORTED_ERRORS`` errors as the client sees them, and a note of the
    rest. Only scalar inputs are echoed (see the module's docstring)."""
    detail = []
    for error in errors:
        if len(detail) == MAX_REPORTED_ERRORS:
            break
        entry = {
            "type": error["type"],
            "loc": [json_safe(part) for part in error["loc"]],
            "msg": _clearer_message(error),
        }
        value = error.get("input", _NO_INPUT)
        if value is None or isinstance(value, (str, int, float, bool)):
            entry["input"] = json_safe(value)
        detail.append(entry)
    if total > len(detail):
        detail.append(
            {
                "type": "too_many_errors",
                "loc": detail[-1]["loc"][:1] if detail else [],
                "msg": f"{total - len(detail)} more errors not shown",
            }
        )
    return detail


class ReportedValidationError(RequestValidationError):
    """A validation error whose errors are already in their reported form."""


def request_validation_error(exc: ValidationError, *where: str | int) -> RequestValidationError:
    """A pydantic error as FastAPI reports it, located under ``where`` (e.g. ``"body"``)."""
    errors = exc.errors(include_url=False, include_context=False)
    located = (error | {"loc": (*where, *error["loc"])} for error in errors)
    return ReportedValidationError(reported(located, len(errors)))


class BodyObject(NamedTuple):
    loc: tuple[str | int, ...]  # where it is, under ``body``
    value: Any
    most_fields: int
    validate: bool  # validated alone (a patient), or only checked for its number of fields


def first_errors(
    objects: Iterable[BodyObject],
    object_errors: Callable[[Any], list[dict[str, Any]]],
    total: int,
) -> RequestValidationError:
    """The first ``MAX_REPORTED_ERRORS`` errors of a body with so many that pydantic's full
    list would cost seconds and gigabytes, found object by object (see ``BodyObject``): an
    object with more fields than it may have is named as such, the others marked for it are
    validated alone by ``object_errors``."""
    errors: list[dict[str, Any]] = []
    for loc, value, most, validate in objects:
        if isinstance(value, dict) and len(value) > most:
            errors.append(
                {
                    "type": "too_many_fields",
                    "loc": ("body", *loc),
                    "msg": f"this object has {len(value)} fields; at most {most} belong here",
                }
            )
        elif validate:
            located = ("body", *loc)
            errors += [error | {"loc": (*located, *error["loc"])} for error in object_errors(value)]
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    return ReportedValidationError(reported(errors, total))


def empty_body_error(expected: str) -> RequestValidationError:
    return ReportedValidationError(
        [
            {
                "type": "missing",
                "loc": ["body"],
                "msg": f"the request body is empty; send {expected} as JSON",
            }
        ]
    )


async def client_disconnect_handler(request: Request, exc: ClientDisconnect) -> Response:
    """A client that hangs up before its body has arrived is no server error: no traceback,
    and metrics count it as 499 (nginx's "client closed request"); no one reads the answer."""
    log.info("client closed %s %s before sending its whole body", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if not isinstance(exc, ReportedValidationError):
        errors = reported(errors, len(errors))
    return JSONResponse({"detail": list(errors)}, status_code=422)
