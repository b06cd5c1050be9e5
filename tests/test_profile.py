"""Profiles of validated data and the drift findings between two profiles."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest

from strokeops.config import Settings
from strokeops.profile import (
    QUANTILES,
    DriftFinding,
    compare_profiles,
    compute_profile,
    findings_as_dicts,
)
from strokeops.schema import FEATURES


@pytest.fixture
def tiny() -> pd.DataFrame:
    """Five hand-made patients whose statistics are easy to work out by hand."""
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "gender": ["Female", "Female", "Male", "Female", "Male"],
            "age": [10.0, 20.0, 30.0, 40.0, 50.0],
            "hypertension": [0, 0, 1, 0, 1],
            "heart_disease": [0, 0, 0, 0, 1],
            "ever_married": ["No", "No", "Yes", "Yes", "Yes"],
            "work_type": ["children", "Private", "Private", "Govt_job", "Self-employed"],
            "Residence_type": ["Urban", "Rural", "Urban", "Urban", "Urban"],
            "avg_glucose_level": [100.0, 100.0, 100.0, 100.0, 200.0],
            "bmi": [20.0, np.nan, 30.0, 40.0, np.nan],
            "smoking_status": ["never smoked", "Unknown", "never smoked", None, "smokes"],
            "stroke": [0, 1, 0, 0, 1],
        }
    )


def test_compute_profile_on_a_tiny_frame(tiny: pd.DataFrame) -> None:
    profile = compute_profile(tiny)

    assert profile["n_rows"] == 5
    assert profile["prevalence"] == 0.4
    assert profile["missing_rate"] == {
        name: {"bmi": 0.4, "smoking_status": 0.2}.get(name, 0.0) for name in FEATURES
    }
    # shares among the non-missing values
    assert profile["category_frequency"] == {
        "gender": {"Female": 0.6, "Male": 0.4},
        "ever_married": {"Yes": 0.6, "No": 0.4},
        "work_type": {"Private": 0.4, "children": 0.2, "Govt_job": 0.2, "Self-employed": 0.2},
        "Residence_type": {"Urban": 0.8, "Rural": 0.2},
        "smoking_status": {"never smoked": 0.5, "Unknown": 0.25, "smokes": 0.25},
    }
    # linear interpolation at 5/25/50/75/95%; bmi over its three present values
    assert profile["quantiles"] == {
        "age": pytest.approx([12.0, 20.0, 30.0, 40.0, 48.0], abs=1e-12),
        "avg_glucose_level": pytest.approx([100.0, 100.0, 100.0, 100.0, 180.0], abs=1e-12),
        "bmi": pytest.approx([21.0, 25.0, 30.0, 35.0, 39.0], abs=1e-12),
    }
    assert set(profile) == {
        "n_rows",
        "prevalence",
        "missing_rate",
        "category_frequency",
        "quantiles",
    }


def test_profile_values_are_plain_floats(tiny: pd.DataFrame) -> None:
    profile = compute_profile(tiny)
    assert type(profile["prevalence"]) is float
    assert {type(v) for v in profile["missing_rate"].values()} == {float}
    assert {type(q) for qs in profile["quantiles"].values() for q in qs} == {float}


REFERENCE: dict[str, Any] = {
    "n_rows": 100,
    "prevalence": 0.05,
    "missing_rate": {"age": 0.0, "bmi": 0.04},
    "category_frequency": {"gender": {"Female": 0.6, "Male": 0.4}},
    "quantiles": {"age": [5.0, 20.0, 40.0, 60.0, 80.0]},  # IQR 40: quantile limit 10
}


def _changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    current = copy.deepcopy(REFERENCE)
    target = current
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return current


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        pytest.param(("n_rows",), 201, [DriftFinding("row count", 100, 201, 2.0)], id="rows-up"),
        pytest.param(("n_rows",), 49, [DriftFinding("row count", 100, 49, 2.0)], id="rows-down"),
        pytest.param(("n_rows",), 200, [], id="rows-at-limit"),
        pytest.param(("n_rows",), 50, [], id="rows-at-lower-limit"),
        pytest.param(
            ("prevalence",),
            0.08,
            [DriftFinding("stroke prevalence", 0.05, 0.08, 0.02)],
            id="prevalence",
        ),
        pytest.param(("prevalence",), 0.065, [], id="prevalence-within"),
        pytest.param(
            ("missing_rate", "bmi"),
            0.10,
            [DriftFinding("bmi missing rate", 0.04, 0.10, 0.05)],
            id="missing-rate",
        ),
        pytest.param(("missing_rate", "bmi"), 0.08, [], id="missing-rate-within"),
        pytest.param(
            ("category_frequency", "gender"),
            {"Female": 0.45, "Male": 0.4, "Other": 0.15},
            [
                DriftFinding("gender=Female share", 0.6, 0.45, 0.1),
                DriftFinding("gender=Other share", 0.0, 0.15, 0.1),
            ],
            id="category-new-and-shrunk",
        ),
        pytest.param(
            ("category_frequency", "gender"),
            {"Female": 1.0},
            [
                DriftFinding("gender=Female share", 0.6, 1.0, 0.1),
                DriftFinding("gender=Male share", 0.4, 0.0, 0.1),
            ],
            id="category-vanished",
        ),
        pytest.param(
            ("category_frequency", "gender"),
            {"Female": 0.55, "Male": 0.45},
            [],
            id="category-within",
        ),
        pytest.param(
            ("quantiles", "age"),
            [5.0, 20.0, 52.0, 60.0, 80.0],
            [DriftFinding("age q50", 40.0, 52.0, 10.0)],
            id="quantile",
        ),
        pytest.param(
            ("quantiles", "age"),
            [0.0, 20.0, 40.0, 60.0, 95.0],
            [DriftFinding("age q95", 80.0, 95.0, 10.0)],
            id="quantile-tail",
        ),
        pytest.param(("quantiles", "age"), [9.0, 20.0, 48.0, 60.0, 80.0], [], id="quantile-within"),
    ],
)
def test_compare_profiles_findings(
    path: tuple[str, ...], value: Any, expected: list[DriftFinding]
) -> None:
    assert compare_profiles(_changed(path, value), REFERENCE, Settings()) == expected


def test_identical_profiles_have_no_findings(tiny: pd.DataFrame) -> None:
    profile = compute_profile(tiny)
    assert compare_profiles(profile, profile, Settings()) == []


def test_limits_come_from_the_settings() -> None:
    current = _changed(("prevalence",), 0.065)
    assert compare_profiles(current, REFERENCE, Settings(drift_max_prevalence_shift=0.01)) == [
        DriftFinding("stroke prevalence", 0.05, 0.065, 0.01)
    ]


def test_every_kind_at_once_in_a_fixed_order() -> None:
    current = {
        "n_rows": 300,
        "prevalence": 0.2,
        "missing_rate": {"age": 0.0, "bmi": 0.5},
        "category_frequency": {"gender": {"Male": 1.0}},
        "quantiles": {"age": [5.0, 20.0, 40.0, 60.0, 200.0]},
    }
    statistics = [f.statistic for f in compare_profiles(current, REFERENCE, Settings())]
    assert statistics == [
        "row count",
        "stroke prevalence",
        "bmi missing rate",
        "gender=Female share",
        "gender=Male share",
        "age q95",
    ]


def test_constant_reference_column_flags_any_quantile_move() -> None:
    reference = _changed(("quantiles", "age"), [50.0] * len(QUANTILES))
    current = _changed(("quantiles", "age"), [50.0, 50.0, 50.0, 50.0, 50.001])
    (finding,) = compare_profiles(current, reference, Settings())
    assert finding.statistic == "age q95"
    assert finding.limit == pytest.approx(0.25e-9)


def test_describe_and_findings_as_dicts() -> None:
    findings = [
        DriftFinding("stroke prevalence", 0.0375, 0.11325, 0.02),
        DriftFinding("age q50", 41.65, 61.65, 7.4375),
    ]
    assert [f.describe() for f in findings] == [
        "stroke prevalence: 0.0375 -> 0.1133 (limit 0.02)",
        "age q50: 41.65 -> 61.65 (limit 7.438)",
    ]
    assert findings_as_dicts(findings) == [
        {
            "statistic": "stroke prevalence",
            "reference": 0.0375,
            "current": 0.11325,
            "limit": 0.02,
            "message": "stroke prevalence: 0.0375 -> 0.1133 (limit 0.02)",
        },
        {
            "statistic": "age q50",
            "reference": 41.65,
            "current": 61.65,
            "limit": 7.4375,
            "message": "age q50: 41.65 -> 61.65 (limit 7.438)",
        },
    ]
