"""Evaluate: score every candidate on the held-out test set, with bootstrap intervals and the
same metrics by sex and by age band; log plots; pick the winner on training CV (never on test).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from mlflow import MlflowClient
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from strokeops import plots
from strokeops.config import Settings
from strokeops.errors import NotFoundError
from strokeops.features import feature_frame, target
from strokeops.metrics import bootstrap_intervals, classification_metrics
from strokeops.storage import Lake, read_frame
from strokeops.tracking import (
    TAG_FAMILY,
    TAG_MODEL_URI,
    TAG_ROLE,
    connect,
    flat_metrics,
    get_run,
)

log = logging.getLogger(__name__)

PRIMARY_METRIC = "roc_auc"
AGE_BANDS = ((0.0, 45.0, "age <45"), (45.0, 65.0, "age 45-64"), (65.0, np.inf, "age 65+"))
PERMUTATION_REPEATS = 3
PERMUTATION_MAX_ROWS = 5000  # importance is stable well before that; keeps evaluate linear

TAG_WINNER_RUN = "strokeops.winner_run_id"
TAG_WINNER_FAMILY = "strokeops.winner_family"
TAG_WINNER_MODEL_URI = "strokeops.winner_model_uri"


@dataclass(frozen=True)
class CandidateEvaluation:
    family: str
    run_id: str
    model_uri: str
    threshold: float
    cv: dict[str, dict[str, float]]
    holdout: dict[str, Any]
    holdout_intervals: dict[str, Any]
    subgroups: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationResult:
    parent_run_id: str
    data_version: str
    winner: CandidateEvaluation
    candidates: list[CandidateEvaluation]


def subgroup_masks(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Sex (the data set's gender column) and age bands; tiny groups are reported with their n."""
    masks = {f"sex {value}": (frame["gender"] == value).to_numpy() for value in ("Female", "Male")}
    for low, high, name in AGE_BANDS:
        masks[name] = ((frame["age"] >= low) & (frame["age"] < high)).to_numpy()
    return masks


def holdout_report(
    y_true: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    groups: dict[str, np.ndarray],
    *,
    n_resamples: int,
    seed: int,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """Overall metrics, their bootstrap intervals, and metrics with intervals per subgroup."""
    metrics = classification_metrics(y_true, probability, threshold)
    intervals = bootstrap_intervals(
        y_true, probability, threshold, n_resamples=n_resamples, seed=seed
    )
    subgroups = {}
    for name, mask in groups.items():
        if mask.sum() == 0:
            continue
        subgroups[name] = {
            "metrics": classification_metrics(y_true[mask], probability[mask], threshold),
            "intervals": bootstrap_intervals(
                y_true[mask], probability[mask], threshold, n_resamples=n_resamples, seed=seed
            ),
        }
    return metrics, intervals, subgroups


def _cv_summary(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith("cv_"):
            name, stat = key[3:].rsplit("_", 1)
            summary.setdefault(name, {})[stat] = value
    return summary


def candidate_runs(client: MlflowClient, parent_run_id: str) -> list[mlflow.entities.Run]:
    parent = get_run(client, parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{TAG_ROLE}` = 'candidate'"
        ),
    )
    if not runs:
        raise NotFoundError(f"pipeline run {parent_run_id} has no trained candidates")
    return sorted(runs, key=lambda run: run.data.tags[TAG_FAMILY])


def _log_plots(
    client: MlflowClient,
    run_id: str,
    model: Pipeline,
    X: pd.DataFrame,
    y: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    family: str,
    seed: int,
) -> dict[str, float]:
    importance = permutation_importance(
        model,
        X,
        y,
        scoring="roc_auc",
        n_repeats=PERMUTATION_REPEATS,
        max_samples=min(len(X), PERMUTATION_MAX_ROWS),
        random_state=seed,
    )
    importance_by_feature = pd.Series(importance.importances_mean, index=X.columns)
    figures = {
        "roc.png": plots.roc_figure(y, probability, family),
        "precision_recall.png": plots.pr_figure(y, probability, family),
        "calibration.png": plots.calibration_figure(y, probability, family),
        "confusion_matrix.png": plots.confusion_figure(
            y, (probability >= threshold).astype(int), family
        ),
        "feature_importance.png": plots.importance_figure(importance_by_feature, family),
    }
    for name, figure in figures.items():
        client.log_figure(run_id, figure, f"plots/{name}")
        plt.close(figure)
    return {str(k): float(v) for k, v in importance_by_feature.items()}


def evaluate(parent_run_id: str, lake: Lake, settings: Settings) -> EvaluationResult:
    """Evaluate the candidates of a training run on its held-out test set; record the winner."""
    client = connect(settings)
    parent = get_run(client, parent_run_id)
    if parent.data.tags.get(TAG_ROLE) != "pipeline":
        raise NotFoundError(
            f"run {parent_run_id} is not a pipeline run (strokeops train prints one)"
        )
    test_frame = read_frame(lake, parent.data.params["test_key"])
    X, y = feature_frame(test_frame), target(test_frame).to_numpy()
    groups = subgroup_masks(test_frame)
    evaluations = []
    for run in candidate_runs(client, parent_run_id):
        family, model_uri = run.data.tags[TAG_FAMILY], run.data.tags[TAG_MODEL_URI]
        threshold = run.data.metrics["decision_threshold"]
        model = mlflow.sklearn.load_model(model_uri)
        probability = model.predict_proba(X)[:, 1]
        metrics, intervals, subgroups = holdout_report(
            y,
            probability,
            threshold,
            groups,
            n_resamples=settings.bootstrap_samples,
            seed=settings.seed,
        )
        importance = _log_plots(
            client, run.info.run_id, model, X, y, probability, threshold, family, settings.seed
        )
        for key, value in flat_metrics("holdout_", metrics | {"ci": intervals}).items():
            client.log_metric(run.info.run_id, key, value)
        client.log_dict(
            run.info.run_id,
            {
                "metrics": metrics,
                "intervals": intervals,
                "subgroups": subgroups,
                "permutation_importance": importance,
            },
            "evaluation/holdout.json",
        )
        evaluations.append(
            CandidateEvaluation(
                family=family,
                run_id=run.info.run_id,
                model_uri=model_uri,
                threshold=threshold,
                cv=_cv_summary(run.data.metrics),
                holdout=metrics,
                holdout_intervals=intervals,
                subgroups=subgroups,
            )
        )
    # selection on training CV only: the test set must not choose the model it then grades
    winner = max(
        evaluations,
        key=lambda c: (c.cv[PRIMARY_METRIC]["mean"], -c.cv["brier"]["mean"], c.family),
    )
    client.set_tag(parent_run_id, TAG_WINNER_RUN, winner.run_id)
    client.set_tag(parent_run_id, TAG_WINNER_FAMILY, winner.family)
    client.set_tag(parent_run_id, TAG_WINNER_MODEL_URI, winner.model_uri)
    for key, value in flat_metrics(
        "winner_holdout_", winner.holdout | {"ci": winner.holdout_intervals}
    ).items():
        client.log_metric(parent_run_id, key, value)
    for key, value in flat_metrics("winner_cv_", winner.cv).items():
        client.log_metric(parent_run_id, key, value)
    log.info("winner on training CV: %s", winner.family)
    return EvaluationResult(
        parent_run_id=parent_run_id,
        data_version=parent.data.params["data_version"],
        winner=winner,
        candidates=evaluations,
    )
