"""Predictions for one patient or a batch.

These are the hot routes, so they read the raw body and validate it with pydantic in one pass
from JSON (``TypeAdapter.validate_json``) instead of declaring typed parameters: FastAPI's
generic parameter resolution (stdlib JSON parsing, then a dependency solve per parameter) cost
more than everything else the single-row path does, and with nothing left to resolve the
routes are ``DirectRoute``s (Starlette calls them without FastAPI's handler). The validation is
the same pydantic schema, errors are reported as FastAPI reports them (422, ``loc`` starting
with ``body`` or ``query``), and the OpenAPI schema declares the bodies and the ``explain``
parameter explicitly (``openapi_extra``), so the docs and clients see no difference.
"""

from __future__ import annotations

import functools
import gc
import itertools
import re
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pydantic_core
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from strokeops.serving.deps import Scoring, scoring_for
from strokeops.serving.errors import (
    BodyObject,
    ReportedValidationError,
    empty_body_error,
    first_errors,
    request_validation_error,
)
from strokeops.serving.headers import header_value
from strokeops.serving.model_store import ServingModel
from strokeops.serving.routes.direct import DirectRoute
from strokeops.serving.schemas import (
    FIELD_OF_FEATURE,
    BatchResponse,
    Patient,
    Prediction,
    batch_request,
    feature_columns,
    model_row,
)

router = APIRouter(prefix="/v1", tags=["predictions"], route_class=DirectRoute)

TOP_FACTORS = 5
UTF8_BOM = b"\xef\xbb\xbf"
# a body with more errors than this may be one of objects with huge numbers of unknown fields
COSTLY_ERROR_COUNT = 1_000
PATIENT_KEYS = len(Patient.__annotations__) + 1  # its fields and the Residence_type alias
CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
PATIENT_SCHEMA_REF = "#/components/schemas/Patient"
patient_adapter = TypeAdapter(Patient)
flag_adapter = TypeAdapter(bool)

# request ids: a random prefix per process and a counter, unique without a uuid4 per request
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count()


def _request_id(request: Request) -> str:
    """The client's ``X-Request-ID`` if it is 1-64 letters, digits and ``._:-``, else a new
    unique one (the id goes into logs and the prediction log, so no control characters)."""
    given = header_value(request.scope, b"x-request-id")  # raw: no Headers object to build
    if given is not None and CLIENT_REQUEST_ID.fullmatch(given):
        return given.decode("ascii")
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


async def _body(request: Request) -> bytes:
    body = await request.body()
    # JSON (RFC 8259) lets a parser ignore a byte-order mark, and some Windows tools write one
    return body[len(UTF8_BOM) :] if body.startswith(UTF8_BOM) else body


def _parse_patient(body: bytes) -> Patient:
    if not body:
        raise empty_body_error("one patient")
    try:
        return patient_adapter.validate_json(body)
    except ValidationError as exc:
        raise _body_error(exc, body, batch=False) from exc


def _body_error(exc: ValidationError, body: bytes, *, batch: bool) -> RequestValidationError:
    """The 422 for a body that failed validation, at a cost bounded by the body's size."""
    total = exc.error_count()
    if total <= COSTLY_ERROR_COUNT:
        return request_validation_error(exc, "body")
    # pydantic would build an entry per error (a 16 MB body of unknown keys, distinct or
    # repeated, has millions): find the first errors object by object instead
    return first_errors(_objects(body, batch=batch), _patient_errors, total)


def _objects(body: bytes, *, batch: bool) -> Iterator[BodyObject]:
    """The body's objects with the most fields each may have: the patient, or the batch and
    its patients (parsed again only on the rare path of a body with very many errors)."""
    data = pydantic_core.from_json(body, allow_inf_nan=True)  # a repeated key: the last wins
    if not batch:
        yield BodyObject((), data, PATIENT_KEYS, validate=True)
        return
    yield BodyObject((), data, 1, validate=False)
    rows = data.get("patients") if isinstance(data, dict) else None
    for index, row in enumerate(rows if isinstance(rows, list) else []):
        yield BodyObject(("patients", index), row, PATIENT_KEYS, validate=True)


def _patient_errors(value: Any) -> list[dict[str, Any]]:
    """One patient's errors as pydantic reports them: at most a dozen, its keys are few."""
    try:
        patient_adapter.validate_json(pydantic_core.to_json(value, inf_nan_mode="constants"))
    except ValidationError as exc:
        return exc.errors(include_url=False, include_context=False)
    return []


def _explain_flag(request: Request) -> bool:
    """``?explain=``, parsed as FastAPI parses a bool query parameter (true/false, 1/0, …)."""
    if not request.scope["query_string"]:
        return False  # the usual case: no query string to parse
    value = request.query_params.get("explain")
    if value is None:
        return False
    try:
        return flag_adapter.validate_python(value)
    except ValidationError as exc:
        raise request_validation_error(exc, "query", "explain") from exc


def _factors(model: ServingModel, encoded: list[float]) -> list[dict[str, Any]] | None:
    """The largest contributions (see ``Factor``), or None for a model that is not linear."""
    contributions = model.scorer.contributions(np.asarray(encoded))
    if contributions is None:
        return None
    ranked = sorted(contributions.items(), key=lambda item: abs(item[1]), reverse=True)
    return [
        {
            "feature": FIELD_OF_FEATURE[name],
            "contribution": value,
            "direction": "raises" if value > 0 else "lowers",
        }
        for name, value in ranked[:TOP_FACTORS]
        if value != 0.0
    ]


def _json(body: dict[str, Any]) -> Response:
    """The answer, with its request id also as a header (for proxies and client logs)."""
    return Response(
        orjson.dumps(body),
        media_type="application/json",
        headers={"x-request-id": body["request_id"]},
    )


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    "/predict",
    response_model=Prediction,
    response_model_exclude_none=True,
    openapi_extra={
        **_json_body({"$ref": PATIENT_SCHEMA_REF}),
        "parameters": [
            {
                "name": "explain",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False, "title": "Explain"},
                "description": "Add the top factors for this patient.",
            }
        ],
    },
    responses={422: {"description": "Invalid patient: each bad field is named."}},
)
async def predict(request: Request) -> Response:
    """Calibrated stroke probability and risk level for one patient."""
    scoring = scoring_for(request)
    explain = _explain_flag(request)
    patient = _parse_patient(await _body(request))
    model = scoring.model
    row = model_row(patient)
    probability = model.scorer.probability_of(row)
    level = model.risk_level(probability)
    request_id = _request_id(request)
    scoring.prediction_log.submit_predictions(
        request_id, datetime.now(UTC), model.name, model.version, [(patient, probability, level)]
    )
    scoring.metrics.count_predictions(level, model.version)
    body = {
        "request_id": request_id,
        "probability": probability,
        "risk_level": level,
        "decision_threshold": model.threshold,
        "flagged": probability >= model.threshold,
        "model_name": model.name,
        "model_version": model.version,
    }
    if explain:
        body["factors"] = _factors(model, model.scorer.encode_one(row))
    return _json(body)


@functools.cache
def _batch_adapter(limit: int) -> TypeAdapter[Any]:
    return TypeAdapter(batch_request(limit))


def _parse_batch(body: bytes, limit: int) -> list[Patient]:
    if not body:
        raise empty_body_error('{"patients": [...]}')
    try:
        return _batch_adapter(limit).validate_json(body)["patients"]
    except ValidationError as exc:
        if exc.error_count() == 1:  # an oversized batch fails on its length alone
            [error] = exc.errors(include_url=False)
            if error["type"] == "too_long" and error["loc"] == ("patients",):
                raise HTTPException(
                    status.HTTP_413_CONTENT_TOO_LARGE,
                    f"a batch holds at most {limit} patients (STROKEOPS_BATCH_LIMIT); "
                    f"this one has {error['ctx']['actual_length']}",
                ) from exc
        raise _body_error(exc, body, batch=True) from exc


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while a batch is scored: its 10,000 fresh dicts would trigger
    many collections that find nothing (they are all alive), about a tenth of the batch's
    time. The block never awaits, so nothing else runs meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    openapi_extra=_json_body(
        {
            "title": "BatchRequest",
            "type": "object",
            "properties": {
                "patients": {
                    "type": "array",
                    "items": {"$ref": PATIENT_SCHEMA_REF},
                    "minItems": 1,
                    "description": "1 to STROKEOPS_BATCH_LIMIT patients (default 10,000).",
                }
            },
            "required": ["patients"],
            "additionalProperties": False,
        }
    ),
    responses={
        413: {"description": "More patients than the batch limit, or a body over its limit."},
        422: {"description": "Invalid patients: each bad row and field is named."},
    },
)
async def predict_batch(request: Request) -> Response:
    """Score up to ``STROKEOPS_BATCH_LIMIT`` patients (default 10,000), each exactly as the
    single-patient endpoint does."""
    scoring = scoring_for(request)
    if _explain_flag(request):
        raise ReportedValidationError(
            [
                {
                    "type": "unsupported",
                    "loc": ["query", "explain"],
                    "msg": "factors are explained one patient at a time: POST /v1/predict",
                }
            ]
        )
    body = await _body(request)
    with _collector_paused():
        return _score_batch(request, scoring, body)


def _score_batch(request: Request, scoring: Scoring, body: bytes) -> Response:
    model = scoring.model
    patients = _parse_batch(body, scoring.settings.batch_limit)
    scorer = model.scorer
    columns = scorer.encode_columns(feature_columns(patients), len(patients))
    probabilities = scorer.probability(columns).tolist()
    levels = [model.risk_level(p) for p in probabilities]
    request_id = _request_id(request)
    threshold = model.threshold
    response = _json(
        {
            "request_id": request_id,
            "model_name": model.name,
            "model_version": model.version,
            "decision_threshold": threshold,
            "predictions": [
                {"probability": p, "risk_level": level, "flagged": p >= threshold}
                for p, level in zip(probabilities, levels, strict=True)
            ],
        }
    )
    # logged after the answer is built: the log writer wakes for a batch this size, and
    # would otherwise take turns with the response for the interpreter lock
    scoring.prediction_log.submit_predictions(
        request_id,
        datetime.now(UTC),
        model.name,
        model.version,
        list(zip(patients, probabilities, levels, strict=True)),
    )
    for level, count in Counter(levels).items():
        scoring.metrics.count_predictions(level, model.version, count)
    return response
