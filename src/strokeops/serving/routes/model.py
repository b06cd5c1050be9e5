"""What is serving: name, version, alias, training data version, metrics, threshold."""

from __future__ import annotations

from fastapi import APIRouter

from strokeops.serving.deps import ModelDep
from strokeops.serving.routes import GET_AND_HEAD
from strokeops.serving.schemas import ModelInfo

router = APIRouter(prefix="/v1", tags=["model"])


@router.api_route("/model", methods=GET_AND_HEAD, response_model=ModelInfo)
async def model_info(model: ModelDep) -> ModelInfo:
    return ModelInfo(
        name=model.name,
        version=model.version,
        alias=model.alias,
        family=model.family,
        data_version=model.data_version,
        decision_threshold=model.threshold,
        risk_levels=model.risk_levels,
        metrics=model.metrics,
        loaded_at=model.loaded_at,
    )
