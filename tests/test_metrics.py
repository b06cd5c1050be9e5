"""Metrics: the decision threshold, metrics at a threshold, weighted formulas, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    fbeta_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from strokeops.metrics import (
    INTERVAL_METRICS,
    bootstrap_intervals,
    choose_threshold,
    classification_metrics,
    weighted_metrics,
)

# five positives scored 0.9 .. 0.5; two negatives, one above most positives
Y_SMALL = np.array([1, 1, 1, 1, 1, 0, 0])
P_SMALL = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.85, 0.1])


def _recall(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    return float(((p >= threshold) & (y == 1)).sum() / (y == 1).sum())


@pytest.mark.parametrize(
    ("target_recall", "threshold"),
    [(0.2, 0.9), (0.4, 0.8), (0.5, 0.7), (0.6, 0.7), (0.8, 0.6), (0.81, 0.5), (0.99, 0.5)],
)
def test_choose_threshold_is_the_highest_that_meets_the_aim(
    target_recall: float, threshold: float
) -> None:
    chosen = choose_threshold(Y_SMALL, P_SMALL, target_recall)
    assert chosen == threshold
    assert _recall(Y_SMALL, P_SMALL, chosen) >= target_recall
    # the next higher positive score would miss the aim
    higher = P_SMALL[(Y_SMALL == 1) & (chosen < P_SMALL)]
    if higher.size:
        assert _recall(Y_SMALL, P_SMALL, higher.min()) < target_recall


def test_choose_threshold_with_tied_positive_scores() -> None:
    y = np.array([1, 1, 1, 0])
    p = np.array([0.7, 0.3, 0.7, 0.9])
    assert choose_threshold(y, p, 0.5) == 0.7
    assert choose_threshold(y, p, 0.67) == 0.3


def test_choose_threshold_needs_positives() -> None:
    with pytest.raises(ValueError, match=r"^cannot choose a threshold without positive examples$"):
        choose_threshold(np.array([0, 0]), np.array([0.2, 0.4]), 0.8)


def test_choose_threshold_is_exact_for_round_targets() -> None:
    scores = np.linspace(0.99, 0.01, 100)  # 100 positives, distinct scores, highest first
    y = np.ones(100, dtype=int)
    assert _recall(y, scores, scores[54]) == 0.55
    assert choose_threshold(y, scores, 0.55) == scores[54]


def test_classification_metrics_exact() -> None:
    y = np.array([1, 1, 0, 0, 0, 1, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.2, 0.1, 0.7, 0.3, 0.8])
    metrics = classification_metrics(y, p, 0.5)
    # predicted positive: 0.9, 0.6, 0.7, 0.8 -> tp 2, fp 2; missed: 0.4 -> fn 1; tn 3
    assert {k: metrics[k] for k in ("tp", "fp", "tn", "fn", "n")} == {
        "tp": 2,
        "fp": 2,
        "tn": 3,
        "fn": 1,
        "n": 8,
    }
    assert metrics == pytest.approx(
        {
            "n": 8,
            "prevalence": 3 / 8,
            "mean_predicted": 0.5,
            "roc_auc": 12 / 15,  # 0.9 beats 5 negatives, 0.7 beats 4, 0.4 beats 3
            "pr_auc": (1 / 1 + 2 / 3 + 3 / 5) / 3,  # positives at ranks 1, 3 and 5
            "brier": 1.6 / 8,
            "recall": 2 / 3,
            "precision": 2 / 4,
            "specificity": 3 / 5,
            "f1": 4 / 7,
            "f2": 10 / 16,
            "tp": 2,
            "fp": 2,
            "tn": 3,
            "fn": 1,
        },
        abs=1e-12,
    )


def test_threshold_is_inclusive() -> None:
    metrics = classification_metrics(np.array([1, 0]), np.array([0.5, 0.5]), 0.5)
    assert (metrics["tp"], metrics["fp"]) == (1, 1)


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_gives_none_ranking_metrics(label: int) -> None:
    y = np.full(4, label)
    p = np.array([0.1, 0.4, 0.6, 0.9])
    metrics = classification_metrics(y, p, 0.5)
    assert metrics["roc_auc"] is None
    assert metrics["pr_auc"] is None
    assert metrics["brier"] == pytest.approx(np.mean((p - label) ** 2), abs=1e-15)
    assert (metrics["tp"] + metrics["fn"], metrics["tn"] + metrics["fp"]) == (
        (4, 0) if label else (0, 4)
    )


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_gives_no_ranking_intervals(label: int) -> None:
    y = np.full(4, label)
    p = np.array([0.1, 0.4, 0.6, 0.9])
    intervals = bootstrap_intervals(y, p, 0.5, n_resamples=100, seed=0)
    assert intervals["brier"] is not None
    assert intervals["roc_auc"] is None
    assert intervals["pr_auc"] is None


def _sklearn_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, weight: np.ndarray
) -> dict[str, float]:
    predicted = (p >= threshold).astype(int)
    common = {"sample_weight": weight, "zero_division": 0}
    return {
        "roc_auc": roc_auc_score(y, p, sample_weight=weight),
        "pr_auc": average_precision_score(y, p, sample_weight=weight),
        "brier": brier_score_loss(y, p, sample_weight=weight),
        "recall": recall_score(y, predicted, **common),
        "precision": precision_score(y, predicted, **common),
        "specificity": recall_score(y, predicted, pos_label=0, **common),
        "f1": fbeta_score(y, predicted, beta=1, **common),
        "f2": fbeta_score(y, predicted, beta=2, **common),
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_weighted_metrics_equal_sklearn_with_sample_weight(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    y = (rng.random(n) < 0.2).astype(int)
    y[:2] = [0, 1]
    p = rng.integers(0, 12, n) / 12  # few distinct scores: many ties, across both classes
    threshold = float(np.quantile(p, 0.7))
    bootstrap = rng.multinomial(n, np.full(n, 1 / n), size=4)
    fractional = rng.random((3, n)) * (rng.random((3, n)) < 0.8)  # some zero weights
    weights = np.vstack([np.ones(n), bootstrap, fractional])
    # every resample here has both classes
    assert all((w * y).sum() > 0 and (w * (1 - y)).sum() > 0 for w in weights)

    got = weighted_metrics(y, p, threshold, weights)

    assert set(got) == set(INTERVAL_METRICS)
    for row, weight in enumerate(weights):
        expected = _sklearn_metrics(y, p, threshold, weight)
        for name in INTERVAL_METRICS:
            assert got[name][row] == pytest.approx(expected[name], abs=1e-12), (name, row)


def test_unit_weights_match_classification_metrics() -> None:
    rng = np.random.default_rng(11)
    y = (rng.random(200) < 0.3).astype(int)
    p = np.round(np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1), 2)
    point = classification_metrics(y, p, 0.45)
    weighted = weighted_metrics(y, p, 0.45, np.ones(200))
    for name in INTERVAL_METRICS:
        assert weighted[name].shape == (1,)
        assert weighted[name][0] == pytest.approx(point[name], abs=1e-12), name


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    y = (rng.random(300) < 0.2).astype(int)
    p = np.clip(0.15 + 0.35 * y + rng.normal(0, 0.15, 300), 0.001, 0.999)
    return y, p


def test_bootstrap_is_deterministic_for_a_seed(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    first = bootstrap_intervals(y, p, 0.4, n_resamples=150, seed=9)
    again = bootstrap_intervals(y, p, 0.4, n_resamples=150, seed=9)
    other = bootstrap_intervals(y, p, 0.4, n_resamples=150, seed=10)
    assert first == again
    assert first != other
    assert set(first) == set(INTERVAL_METRICS)


def test_bootstrap_interval_contains_the_point_estimate(
    scored: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = scored
    point = classification_metrics(y, p, 0.4)
    intervals = bootstrap_intervals(y, p, 0.4, n_resamples=400, seed=1)
    for name in INTERVAL_METRICS:
        low, high = intervals[name]
        assert low <= point[name] <= high, name
        assert low < high, name


def test_bootstrap_level_widens_the_interval(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    narrow = bootstrap_intervals(y, p, 0.4, n_resamples=300, seed=2, level=0.5)
    wide = bootstrap_intervals(y, p, 0.4, n_resamples=300, seed=2, level=0.99)
    for name in INTERVAL_METRICS:
        assert wide[name][0] < narrow[name][0] <= narrow[name][1] < wide[name][1], name


def test_bootstrap_skips_one_class_resamples_for_ranking_metrics() -> None:
    # one positive among 20: many resamples miss it and have no AUC
    y = np.zeros(20, dtype=int)
    y[0] = 1
    p = np.linspace(0.95, 0.0, 20)
    intervals = bootstrap_intervals(y, p, 0.5, n_resamples=200, seed=0)
    assert intervals["roc_auc"] == (1.0, 1.0)
    assert intervals["pr_auc"] == (1.0, 1.0)
