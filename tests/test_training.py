"""Training: tuning and CV on the training part only, threshold choice, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from strokeops.config import Settings
from strokeops.errors import TrainingError
from strokeops.features import feature_frame, target
from strokeops.metrics import choose_threshold
from strokeops.models import build_pipeline
from strokeops.tracking import flat_metrics
from strokeops.training import cross_validate, fit_candidate, out_of_fold


def test_out_of_fold_covers_each_row_once_per_repeat(patients) -> None:
    X, y = feature_frame(patients), target(patients)
    folds = out_of_fold(
        build_pipeline("logistic_regression", {"C": 1.0, "class_weight": None}, seed=0),
        X,
        y,
        folds=4,
        repeats=2,
        seed=0,
    )
    assert len(folds) == 8
    seen = np.concatenate([idx for idx, _ in folds])
    np.testing.assert_array_equal(np.bincount(seen), np.full(len(patients), 2))


def test_threshold_meets_the_recall_aim_on_pooled_out_of_fold(patients, settings: Settings) -> None:
    X, y = feature_frame(patients), target(patients)
    cv = cross_validate(
        build_pipeline("logistic_regression", {"C": 1.0, "class_weight": None}, seed=0),
        X,
        y,
        settings,
        seed=1,
    )
    summary = cv.summary()
    assert summary["recall"]["mean"] >= settings.target_recall - 0.05
    assert 0.0 < cv.threshold < 0.5
    assert len(cv.fold_metrics) == settings.cv_folds * settings.cv_repeats


@pytest.mark.parametrize("family", ["logistic_regression", "hist_gradient_boosting"])
def test_same_seed_and_data_give_the_same_model(patients, settings: Settings, family) -> None:
    first = fit_candidate(family, patients, settings)
    second = fit_candidate(family, patients, settings)
    assert first.params == second.params
    assert first.threshold == second.threshold
    np.testing.assert_allclose(
        first.model.predict_proba(feature_frame(patients)),
        second.model.predict_proba(feature_frame(patients)),
        rtol=0,
        atol=1e-12,
    )
    assert flat_metrics("", first.cv.summary()) == pytest.approx(
        flat_metrics("", second.cv.summary()), abs=1e-12
    )


def test_training_needs_both_classes(patients, settings: Settings) -> None:
    one_class = patients.assign(stroke=0)
    with pytest.raises(TrainingError, match="needs both classes"):
        fit_candidate("logistic_regression", one_class, settings)


def test_choose_threshold_is_the_highest_meeting_the_aim() -> None:
    y = np.array([1, 1, 1, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.1, 0.5, 0.2])
    # 4 of 5 positives needed: the 4th highest positive score
    assert choose_threshold(y, p, 0.8) == 0.3
