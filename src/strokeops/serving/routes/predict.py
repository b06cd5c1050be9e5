"""Predictions for one patient or a batch."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from strokeops.serving.deps import Authenticated, ScoringDep, SettingsDep
from strokeops.serving.model_store import ServingModel
from strokeops.serving.schemas import (
    FIELD_OF_FEATURE,
    BatchRequest,
    BatchResponse,
    Patient,
    Prediction,
    feature_columns,
    model_row,
)

router = APIRouter(prefix="/v1", tags=["predictions"], dependencies=[Authenticated])

TOP_FACTORS = 5
batch_adapter = TypeAdapter(BatchRequest)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if given.isascii() and 0 < len(given) <= 64 else uuid.uuid4().hex


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
    return Response(orjson.dumps(body), media_type="application/json")


@router.post("/predict", response_model=Prediction, response_model_exclude_none=True)
async def predict(
    patient: Patient,
    request: Request,
    scoring: ScoringDep,
    explain: Annotated[bool, Query(description="Add the top factors for this patient.")] = False,
) -> Response:
    """Calibrated stroke probability and risk level for one patient."""
    model = scoring.model
    encoded = model.scorer.encode_one(model_row(patient))
    probability = model.scorer.probability_one(encoded)
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
        body["factors"] = _factors(model, encoded)
    return _json(body)


def _parse_batch(body: bytes, limit: int) -> list[Patient]:
    """Check the size before validating 10,000 rows; errors as FastAPI reports them."""
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"invalid JSON: {exc}"}]
        ) from exc
    patients = payload.get("patients") if isinstance(payload, dict) else None
    if isinstance(patients, list) and len(patients) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"a batch holds at most {limit} patients; this one has {len(patients)}",
        )
    try:
        return batch_adapter.validate_python(payload)["patients"]
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError(
            [error | {"loc": ("body", *error["loc"])} for error in errors]
        ) from exc


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "title": "BatchRequest",
                        "type": "object",
                        "properties": {
                            "patients": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Patient"},
                                "description": "Up to STROKEOPS_BATCH_LIMIT patients "
                                "(default 10,000).",
                            }
                        },
                        "required": ["patients"],
                        "additionalProperties": False,
                    }
                }
            },
        }
    },
    responses={413: {"description": "More patients than the batch limit."}},
)
async def predict_batch(request: Request, scoring: ScoringDep, settings: SettingsDep) -> Response:
    """Score up to ``STROKEOPS_BATCH_LIMIT`` patients (default 10,000), each exactly as the
    single-patient endpoint does."""
    model = scoring.model
    patients = _parse_batch(await request.body(), settings.batch_limit)
    scorer = model.scorer
    probabilities = (
        scorer.probability(scorer.encode_columns(feature_columns(patients), len(patients))).tolist()
        if patients
        else []
    )
    levels = [model.risk_level(p) for p in probabilities]
    request_id = _request_id(request)
    scoring.prediction_log.submit_predictions(
        request_id,
        datetime.now(UTC),
        model.name,
        model.version,
        list(zip(patients, probabilities, levels, strict=True)),
    )
    for level, count in Counter(levels).items():
        scoring.metrics.count_predictions(level, model.version, count)
    threshold = model.threshold
    return _json(
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
