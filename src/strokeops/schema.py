"""The data contract of the Stroke Prediction data set: one place for columns and categories.

Validation, features and (later) the serving schema all read these definitions.
"""

from __future__ import annotations

from typing import Final

ID: Final = "id"
TARGET: Final = "stroke"

CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "gender": ("Female", "Male", "Other"),
    "ever_married": ("No", "Yes"),
    "work_type": ("Govt_job", "Never_worked", "Private", "Self-employed", "children"),
    "Residence_type": ("Rural", "Urban"),
    "smoking_status": ("Unknown", "formerly smoked", "never smoked", "smokes"),
}
BINARY: Final[tuple[str, ...]] = ("hypertension", "heart_disease")
# Physical ranges, wider than the data (age 0.08-82, glucose 55-272, bmi 10.3-97.6) so that
# real patients pass, but typing errors (age 820, glucose 0) do not.
NUMERIC_RANGES: Final[dict[str, tuple[float, float]]] = {
    "age": (0.0, 120.0),
    "avg_glucose_level": (30.0, 600.0),
    "bmi": (8.0, 120.0),
}
NULLABLE: Final[frozenset[str]] = frozenset({"bmi"})
MISSING_MARKERS: Final[tuple[str, ...]] = ("N/A", "")

NUMERIC_FEATURES: Final[tuple[str, ...]] = tuple(NUMERIC_RANGES)
CATEGORICAL_FEATURES: Final[tuple[str, ...]] = tuple(CATEGORIES)
FEATURES: Final[tuple[str, ...]] = (
    "gender",
    "age",
    "hypertension",
    "heart_disease",
    "ever_married",
    "work_type",
    "Residence_type",
    "avg_glucose_level",
    "bmi",
    "smoking_status",
)
COLUMNS: Final[tuple[str, ...]] = (ID, *FEATURES, TARGET)
