"""Model tests: each family's Pipeline, its preprocessing, and behaviour a clinician expects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strokeops.features import feature_frame, target
from strokeops.models import FAMILIES, build_pipeline
from strokeops.schema import FEATURES

PARAMS = {
    "logistic_regression": {"C": 1.0, "class_weight": None},
    "random_forest": {
        "max_depth": 5,
        "min_samples_leaf": 10,
        "max_features": 0.5,
        "class_weight": None,
    },
    "hist_gradient_boosting": {
        "learning_rate": 0.1,
        "max_iter": 50,
        "max_leaf_nodes": 7,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
        "class_weight": "balanced",
    },
}


@pytest.fixture(scope="module")
def fitted(request: pytest.FixtureRequest):
    from strokeops.synthetic import generate_patients

    frame = generate_patients(3000, seed=11)
    return {
        family: build_pipeline(family, PARAMS[family], seed=0, threshold=0.1).fit(
            feature_frame(frame), target(frame)
        )
        for family in FAMILIES
    }


def test_every_family_has_test_params() -> None:
    assert set(PARAMS) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_id_and_target_are_never_features(fitted, family: str) -> None:
    assert list(fitted[family].feature_names_in_) == list(FEATURES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_predict_applies_the_stored_threshold(fitted, family: str, patients) -> None:
    model = fitted[family]
    probability = model.predict_proba(feature_frame(patients))[:, 1]
    np.testing.assert_array_equal(
        model.predict(feature_frame(patients)), (probability >= 0.1).astype(int)
    )
    assert model.named_steps["classifier"].threshold == 0.1


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_unknown_category_and_missing_bmi_are_tolerated(fitted, family: str, patients) -> None:
    row = feature_frame(patients.head(1))
    row.loc[row.index[0], "work_type"] = "Astronaut"
    row.loc[row.index[0], "bmi"] = np.nan
    probability = fitted[family].predict_proba(row)[0, 1]
    assert 0.0 < probability < 1.0


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_probabilities_are_calibrated_on_average(fitted, family: str, patients) -> None:
    probability = fitted[family].predict_proba(feature_frame(patients))[:, 1]
    assert abs(probability.mean() - patients["stroke"].mean()) < 0.02


def _patient(**changes) -> pd.DataFrame:
    base = {
        "gender": "Female",
        "age": 50.0,
        "hypertension": 0,
        "heart_disease": 0,
        "ever_married": "Yes",
        "work_type": "Private",
        "Residence_type": "Urban",
        "avg_glucose_level": 100.0,
        "bmi": 28.0,
        "smoking_status": "never smoked",
    }
    return feature_frame(pd.DataFrame([base | changes]))


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ({"age": 40.0}, {"age": 75.0}),
        ({"hypertension": 0}, {"hypertension": 1}),
        ({"heart_disease": 0}, {"heart_disease": 1}),
    ],
)
def test_known_risk_factors_do_not_lower_risk(fitted, lower: dict, higher: dict) -> None:
    model = fitted["logistic_regression"]
    low = model.predict_proba(_patient(**lower))[0, 1]
    high = model.predict_proba(_patient(**higher))[0, 1]
    assert high > low
