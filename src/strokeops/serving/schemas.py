"""Request and response bodies of the API.

Fields are snake_case; the data set's own column names (``Residence_type``) are accepted as
aliases. Categories are enums, numbers have physical ranges (``strokeops.schema``), ``bmi`` is
optional (the model imputes it), integers are accepted for floats, and booleans or 0/1 for the
binary fields. Unknown fields, nulls, NaN, Infinity and wrong types are rejected.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from strokeops.schema import CATEGORIES, NUMERIC_RANGES

Gender = StrEnum("Gender", {v: v for v in CATEGORIES["gender"]})
EverMarried = StrEnum("EverMarried", {v: v for v in CATEGORIES["ever_married"]})
WorkType = StrEnum("WorkType", {v.replace("-", "_"): v for v in CATEGORIES["work_type"]})
ResidenceType = StrEnum("ResidenceType", {v: v for v in CATEGORIES["Residence_type"]})
SmokingStatus = StrEnum(
    "SmokingStatus", {v.replace(" ", "_"): v for v in CATEGORIES["smoking_status"]}
)


def _binary(value: Any) -> Any:
    """true/false or 0/1 only: not "yes", not 2, not 1.0."""
    if isinstance(value, bool) or (type(value) is int and value in (0, 1)):
        return int(value)
    raise ValueError("must be true, false, 0 or 1")


Binary = Annotated[int, BeforeValidator(_binary)]
Number = Annotated[float, Strict()]


def _range(name: str, description: str) -> Any:
    low, high = NUMERIC_RANGES[name]
    return Field(ge=low, le=high, allow_inf_nan=False, description=description)


EXAMPLE = {
    "gender": "Male",
    "age": 67,
    "hypertension": 0,
    "heart_disease": 1,
    "ever_married": "Yes",
    "work_type": "Private",
    "residence_type": "Urban",
    "avg_glucose_level": 228.69,
    "bmi": 36.6,
    "smoking_status": "formerly smoked",
}


class Patient(BaseModel):
    """One patient, as in the Stroke Prediction data set (no name or identifier)."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [EXAMPLE]},
    )

    gender: Gender = Field(description="Sex as recorded in the data set.")
    age: Number = _range("age", "Age in years; children have fractional ages.")
    hypertension: Binary = Field(description="Diagnosed hypertension (true/false or 1/0).")
    heart_disease: Binary = Field(description="Diagnosed heart disease (true/false or 1/0).")
    ever_married: EverMarried = Field(description="Ever married.")
    work_type: WorkType = Field(description="Type of work; 'children' for minors.")
    residence_type: ResidenceType = Field(
        validation_alias=AliasChoices("residence_type", "Residence_type"),
        description="Rural or urban residence (alias: Residence_type).",
    )
    avg_glucose_level: Number = _range("avg_glucose_level", "Average blood glucose level in mg/dL.")
    bmi: Number | None = Field(
        default=None,
        ge=NUMERIC_RANGES["bmi"][0],
        le=NUMERIC_RANGES["bmi"][1],
        allow_inf_nan=False,
        description="Body-mass index in kg/m²; omit or null if unknown (the model imputes it).",
    )
    smoking_status: SmokingStatus = Field(description="Smoking status; 'Unknown' if not known.")

    def model_row(self) -> dict[str, Any]:
        """The row in the data set's column names, as the model was trained on."""
        return {
            "gender": self.gender.value,
            "age": self.age,
            "hypertension": self.hypertension,
            "heart_disease": self.heart_disease,
            "ever_married": self.ever_married.value,
            "work_type": self.work_type.value,
            "Residence_type": self.residence_type.value,
            "avg_glucose_level": self.avg_glucose_level,
            "bmi": self.bmi,
            "smoking_status": self.smoking_status.value,
        }


RiskLevel = Literal["low", "elevated", "high"]


class Factor(BaseModel):
    feature: str
    contribution: float = Field(
        description="Change in the model's log-odds vs. an average patient."
    )
    direction: Literal["raises", "lowers"]


class Prediction(BaseModel):
    request_id: str
    probability: float = Field(description="Calibrated probability of stroke.")
    risk_level: RiskLevel
    decision_threshold: float
    flagged: bool = Field(description="probability >= decision_threshold")
    model_name: str
    model_version: str
    factors: list[Factor] | None = Field(
        default=None, description="Top factors, with ?explain=true (linear models)."
    )


class BatchRequest(BaseModel):
    patients: list[Patient]


class BatchPrediction(BaseModel):
    probability: float
    risk_level: RiskLevel
    flagged: bool


class BatchResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    decision_threshold: float
    predictions: list[BatchPrediction]


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    family: str | None
    data_version: str | None
    decision_threshold: float
    risk_levels: dict[str, float]
    metrics: dict[str, float]
    loaded_at: str
