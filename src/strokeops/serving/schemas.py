"""Request and response bodies of the API.

A patient is a typed dict validated entirely by pydantic-core (no Python callbacks), so that a
10,000-patient batch validates in milliseconds. Fields are snake_case; the data set's own
column name ``Residence_type`` is accepted as an alias. Categories are the data set's, numbers
have physical ranges (``strokeops.schema``), ``bmi`` is optional (the model imputes it),
integers are accepted for floats, and true/false or 0/1 for the binary fields. Unknown fields,
nulls, NaN, Infinity and wrong types are rejected.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, Strict, TypeAdapter, with_config
from typing_extensions import TypedDict

from strokeops.schema import FEATURES, NUMERIC_RANGES

Binary = Literal[0, 1]  # pydantic accepts true/false for these too


def _number(name: str, description: str) -> Any:
    low, high = NUMERIC_RANGES[name]
    return Annotated[
        float, Strict(), Field(ge=low, le=high, allow_inf_nan=False, description=description)
    ]


Age = _number("age", "Age in years; children have fractional ages.")
Glucose = _number("avg_glucose_level", "Average blood glucose level in mg/dL.")
Bmi = _number("bmi", "Body-mass index in kg/m²; omit or null if unknown (the model imputes it).")

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


@with_config(ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]}))
class Patient(TypedDict):
    """One patient, as in the Stroke Prediction data set (no name or identifier)."""

    gender: Annotated[
        Literal["Female", "Male", "Other"], Field(description="Sex as recorded in the data set.")
    ]
    age: Age
    hypertension: Annotated[Binary, Field(description="Diagnosed hypertension: true/false, 1/0.")]
    heart_disease: Annotated[Binary, Field(description="Diagnosed heart disease: true/false, 1/0.")]
    ever_married: Annotated[Literal["No", "Yes"], Field(description="Ever married.")]
    work_type: Annotated[
        Literal["Govt_job", "Never_worked", "Private", "Self-employed", "children"],
        Field(description="Type of work; 'children' for minors."),
    ]
    residence_type: Annotated[
        Literal["Rural", "Urban"],
        Field(
            validation_alias=AliasChoices("residence_type", "Residence_type"),
            description="Rural or urban residence (alias: Residence_type).",
        ),
    ]
    avg_glucose_level: Glucose
    bmi: NotRequired[Bmi | None]
    smoking_status: Annotated[
        Literal["Unknown", "formerly smoked", "never smoked", "smokes"],
        Field(description="Smoking status; 'Unknown' if not known."),
    ]


# the data set's column name of each model feature -> the API's field name
FIELD_OF_FEATURE = {feature: feature for feature in FEATURES} | {"Residence_type": "residence_type"}


def model_row(patient: Patient) -> dict[str, Any]:
    """The patient in the data set's column names, as the model was trained on."""
    return {feature: patient.get(field) for feature, field in FIELD_OF_FEATURE.items()}


_REQUIRED = {feature: field for feature, field in FIELD_OF_FEATURE.items() if field != "bmi"}
_required_values = operator.itemgetter(*_REQUIRED.values())


def feature_columns(patients: list[Patient]) -> dict[str, Sequence[Any]]:
    """Columns in the data set's names for scoring a batch (of at least one patient) in one
    pass, transposed in C: a ``.get`` per field and patient took a tenth of a 10,000-row
    batch's time."""
    transposed = zip(*map(_required_values, patients), strict=True)
    columns: dict[str, Sequence[Any]] = dict(zip(_REQUIRED, transposed, strict=True))
    columns["bmi"] = [patient.get("bmi") for patient in patients]  # optional: may be absent
    return columns


def batch_request(limit: int) -> type:
    """The batch body ``{"patients": [...]}`` with 1 to ``limit`` patients: pydantic checks
    the length before it validates the patients, so an oversized batch fails fast."""
    # the functional form: the class form could not see ``limit`` (annotations are postponed)
    body = TypedDict(  # noqa: UP013
        "BatchRequest",
        {"patients": Annotated[list[Patient], Field(min_length=1, max_length=limit)]},
    )
    return with_config(ConfigDict(extra="forbid"))(body)


def patient_json_schema() -> dict[str, Any]:
    """Patient's JSON schema for the OpenAPI components (the routes parse bodies themselves)."""
    return TypeAdapter(Patient).json_schema(ref_template="#/components/schemas/{model}")


RiskLevel = Literal["low", "elevated", "high"]


class Factor(BaseModel):
    feature: str
    contribution: float = Field(description="Change in log-odds vs. an average patient.")
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
