"""Classification metrics at a decision threshold, the threshold choice, bootstrap intervals.

Point estimates come from scikit-learn. Bootstrap intervals need thousands of resamples, so they
use the equivalent weighted formulas on a sorted score array (a resample is a vector of
multiplicity weights); ``tests/test_metrics.py`` checks them against scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    fbeta_score,
    roc_auc_score,
)

RANKING_METRICS = ("roc_auc", "pr_auc")
INTERVAL_METRICS = (
    "roc_auc",
    "pr_auc",
    "brier",
    "recall",
    "precision",
    "specificity",
    "f1",
    "f2",
)
BOOTSTRAP_BATCH = 64


def choose_threshold(y_true: np.ndarray, probability: np.ndarray, target_recall: float) -> float:
    """The highest threshold whose recall (predicting positive at ``p >= t``) meets the aim."""
    positives = np.sort(np.asarray(probability)[np.asarray(y_true) == 1])[::-1]
    if positives.size == 0:
        raise ValueError("cannot choose a threshold without positive examples")
    # round first: 0.55 * 100 is 55.000000000000007 in floating point
    needed = max(1, math.ceil(round(target_recall * positives.size, 9)))
    return float(positives[needed - 1])


def classification_metrics(
    y_true: np.ndarray, probability: np.ndarray, threshold: float
) -> dict[str, float | None]:
    """Ranking, calibration and threshold metrics; ranking metrics are None for one class."""
    y_true = np.asarray(y_true)
    probability = np.asarray(probability, dtype=float)
    predicted = (probability >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_true, predicted, labels=[0, 1]).ravel()
    both_classes = len(np.unique(y_true)) == 2

    def ratio(num: float, den: float) -> float:
        return float(num / den) if den else 0.0

    return {
        "n": int(y_true.size),
        "prevalence": float(y_true.mean()),
        "mean_predicted": float(probability.mean()),
        "roc_auc": float(roc_auc_score(y_true, probability)) if both_classes else None,
        "pr_auc": float(average_precision_score(y_true, probability)) if both_classes else None,
        "brier": float(brier_score_loss(y_true, probability, labels=[0, 1])),
        "recall": ratio(tp, tp + fn),
        "precision": ratio(tp, tp + fp),
        "specificity": ratio(tn, tn + fp),
        "f1": float(fbeta_score(y_true, predicted, beta=1, zero_division=0)),
        "f2": float(fbeta_score(y_true, predicted, beta=2, zero_division=0)),
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
    }


def weighted_metrics(
    y_true: np.ndarray, probability: np.ndarray, threshold: float, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """The metrics of ``INTERVAL_METRICS`` for each row of ``weights`` (shape: resamples x n)."""
    y_true = np.asarray(y_true).astype(bool)
    probability = np.asarray(probability, dtype=float)
    weights = np.atleast_2d(weights).astype(float)
    order = np.argsort(-probability, kind="stable")
    scores, y_sorted, w_sorted = probability[order], y_true[order], weights[:, order]
    # group tied scores: each unique score is one threshold step
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    pos = np.add.reduceat(w_sorted * y_sorted, starts, axis=1)
    neg = np.add.reduceat(w_sorted * ~y_sorted, starts, axis=1)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    cum_pos, cum_neg = pos.cumsum(axis=1), neg.cumsum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # AUC: each positive beats the negatives scored below it, half a win for a tie
        neg_below = total_neg[:, None] - cum_neg
        roc_auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
        precision_at = np.nan_to_num(cum_pos / (cum_pos + cum_neg))
        pr_auc = (pos * precision_at).sum(axis=1) / total_pos
        pr_auc[total_neg == 0] = np.nan  # undefined with one class, as roc_auc

        predicted = probability >= threshold
        yb = y_true
        tp = (weights * (yb & predicted)).sum(axis=1)
        fp = (weights * (~yb & predicted)).sum(axis=1)
        fn = (weights * (yb & ~predicted)).sum(axis=1)
        tn = (weights * (~yb & ~predicted)).sum(axis=1)
        brier = (weights * (probability - yb) ** 2).sum(axis=1) / weights.sum(axis=1)
        recall = np.nan_to_num(tp / (tp + fn))
        precision = np.nan_to_num(tp / (tp + fp))
        specificity = np.nan_to_num(tn / (tn + fp))
        f1 = np.nan_to_num(2 * tp / (2 * tp + fp + fn))
        f2 = np.nan_to_num(5 * tp / (5 * tp + 4 * fn + fp))
    return {
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "brier": brier,
        "recall": recall,
        "precision": precision,
        "specificity": specificity,
        "f1": f1,
        "f2": f2,
    }


def bootstrap_intervals(
    y_true: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    *,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap intervals; resamples with one class only are skipped for AUCs."""
    n = len(y_true)
    rng = np.random.default_rng(seed)
    batches: list[dict[str, np.ndarray]] = []
    for start in range(0, n_resamples, BOOTSTRAP_BATCH):
        size = min(BOOTSTRAP_BATCH, n_resamples - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        batches.append(weighted_metrics(y_true, probability, threshold, weights))
    tail = (1 - level) / 2 * 100
    intervals: dict[str, tuple[float, float] | None] = {}
    for name in INTERVAL_METRICS:
        values = np.concatenate([batch[name] for batch in batches])
        values = values[np.isfinite(values)]
        intervals[name] = (
            (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
            if values.size
            else None
        )
    return intervals
