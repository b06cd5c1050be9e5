"""The compiled serving form: exact against the Pipeline, or refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from strokeops.compile import (
    CompiledModelMismatchError,
    compile_pipeline,
    risk_levels,
    scorer_for,
    verify,
)
from strokeops.features import feature_frame, target
from strokeops.models import build_pipeline
from strokeops.scoring import Scorer
from strokeops.synthetic import generate_patients

LINEAR_PARAMS = {"C": 0.5, "class_weight": "balanced"}
BOOSTING_PARAMS = {
    "learning_rate": 0.1,
    "max_iter": 40,
    "max_leaf_nodes": 7,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "class_weight": None,
}


@pytest.fixture(scope="module")
def train_frame():
    return generate_patients(3000, seed=21)


@pytest.fixture(scope="module")
def linear(train_frame):
    model = build_pipeline("logistic_regression", LINEAR_PARAMS, seed=0, threshold=0.07)
    model.fit(feature_frame(train_frame), target(train_frame))
    return model, compile_pipeline(model, train_frame)


def test_linear_model_compiles_completely_and_exactly(linear, patients) -> None:
    model, spec = linear
    assert spec["model"]["kind"] == "calibrated_linear"
    assert len(spec["model"]["members"]) == 3
    assert spec["threshold"] == 0.07
    assert verify(spec, model, patients) <= 1e-12


def test_single_row_path_equals_the_batch_path(linear, patients) -> None:
    model, spec = linear
    scorer = scorer_for(spec)
    rows = feature_frame(patients.head(200)).to_dict("records")
    rows[0]["bmi"] = None
    rows[1]["work_type"] = "Astronaut"  # unknown category: all its one-hot columns are 0
    batch = scorer.probability(scorer.encode(rows))
    single = np.array([scorer.probability_one(scorer.encode_one(row)) for row in rows])
    np.testing.assert_allclose(single, batch, rtol=0, atol=1e-15)
    folded = np.array([scorer.probability_of(row) for row in rows])  # what /v1/predict uses
    np.testing.assert_allclose(folded, batch, rtol=0, atol=1e-14)
    frame = feature_frame(patients.head(200))
    frame.loc[0, "bmi"] = np.nan
    frame.loc[1, "work_type"] = "Astronaut"
    np.testing.assert_allclose(batch, model.predict_proba(frame)[:, 1], rtol=0, atol=1e-12)


def test_contributions_add_up_to_the_log_odds_difference(linear, patients) -> None:
    _, spec = linear
    scorer = scorer_for(spec)
    row = scorer.encode(feature_frame(patients.head(1)).to_dict("records"))[0]
    contributions = scorer.contributions(row)
    assert set(contributions) == set(spec["source_features"])
    members = spec["model"]["members"]

    def averaged_log_odds(x: np.ndarray) -> float:
        return float(
            np.mean([-(m["a"] * (np.dot(m["coef"], x) + m["intercept"]) + m["b"]) for m in members])
        )

    expected = averaged_log_odds(row) - averaged_log_odds(np.asarray(spec["baseline"]))
    assert sum(contributions.values()) == pytest.approx(expected, abs=1e-12)


def test_other_families_keep_their_estimator(train_frame, patients) -> None:
    model = build_pipeline("hist_gradient_boosting", BOOSTING_PARAMS, seed=0, threshold=0.1)
    model.fit(feature_frame(train_frame), target(train_frame))
    spec = compile_pipeline(model, train_frame)
    assert spec["model"] == {"kind": "estimator"}
    assert verify(spec, model, patients) <= 1e-12
    with pytest.raises(ValueError, match="needs its fitted Pipeline"):
        scorer_for(spec)


def test_a_compiled_form_that_disagrees_is_refused(linear, patients) -> None:
    model, spec = linear
    tampered = copy.deepcopy(spec)
    tampered["model"]["members"][0]["coef"][0] += 0.01
    with pytest.raises(
        CompiledModelMismatchError,
        match=r"differs from the Pipeline by .* on 2000 rows; it may not serve",
    ):
        verify(tampered, model, patients)


def test_a_single_row_path_that_disagrees_is_refused(linear, patients, monkeypatch) -> None:
    model, spec = linear
    exact = Scorer.probability_of
    monkeypatch.setattr(Scorer, "probability_of", lambda self, row: exact(self, row) + 1e-5)
    with pytest.raises(
        CompiledModelMismatchError, match=r"the single-row path differs from the Pipeline by 1e-05"
    ):
        verify(spec, model, patients)


def test_an_estimator_single_row_encoding_that_disagrees_is_refused(
    train_frame, patients, monkeypatch
) -> None:
    model = build_pipeline("hist_gradient_boosting", BOOSTING_PARAMS, seed=0, threshold=0.1)
    model.fit(feature_frame(train_frame), target(train_frame))
    spec = compile_pipeline(model, train_frame)
    exact = Scorer.encode_one
    monkeypatch.setattr(Scorer, "encode_one", lambda self, row: [*exact(self, row)[:-1], 0.5])
    with pytest.raises(
        CompiledModelMismatchError, match=r"the single-row encoding differs from the Pipeline"
    ):
        verify(spec, model, patients)


def test_unknown_spec_format_is_refused(linear) -> None:
    _, spec = linear
    with pytest.raises(ValueError, match="unsupported compiled model format 2"):
        scorer_for(spec | {"format": 2})


@pytest.mark.parametrize(
    ("threshold", "prevalence", "expected"),
    [
        (0.05, 0.05, {"elevated": 0.05, "high": 0.2}),
        (0.3, 0.05, {"elevated": 0.3, "high": 0.3}),
    ],
)
def test_risk_levels(threshold: float, prevalence: float, expected: dict) -> None:
    assert risk_levels(threshold, prevalence) == pytest.approx(expected)
