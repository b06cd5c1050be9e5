"""Train: tune each model family with Optuna on repeated stratified CV of the training part,
estimate it with a larger repeated CV, choose its decision threshold there, and fit it.

Nothing here sees the test set. The threshold is the highest that keeps the pooled
out-of-fold recall at the clinical aim (``Settings.target_recall``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import mlflow
import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline

from strokeops import __version__
from strokeops.config import Settings
from strokeops.errors import TrainingError
from strokeops.features import feature_frame, target
from strokeops.metrics import INTERVAL_METRICS, choose_threshold, classification_metrics
from strokeops.models import FAMILIES, Params, build_pipeline, suggest_params
from strokeops.split import SplitResult
from strokeops.storage import Lake, read_frame, read_json
from strokeops.tracking import (
    TAG_DATA_VERSION,
    TAG_FAMILY,
    TAG_FINGERPRINT,
    TAG_MODEL_URI,
    TAG_ROLE,
    code_version,
    connect,
    flat_metrics,
    log_model,
    package_versions,
)
from strokeops.validation import report_key as validation_report_key

log = logging.getLogger(__name__)

N_JOBS = 2


def _n_jobs(family: str) -> int:
    return 1 if FAMILIES[family].fast else N_JOBS


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold results of one configuration on repeated stratified CV."""

    threshold: float
    fold_metrics: list[dict[str, float | None]]

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean, standard deviation and the 2.5/97.5 percentiles across folds, per metric."""
        out: dict[str, dict[str, float]] = {}
        for name in INTERVAL_METRICS:
            values = np.array([m[name] for m in self.fold_metrics if m[name] is not None])
            out[name] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "low": float(np.percentile(values, 2.5)),
                "high": float(np.percentile(values, 97.5)),
            }
        return out


@dataclass(frozen=True)
class FittedCandidate:
    family: str
    params: Params
    model: Pipeline
    threshold: float
    cv: CrossValidation
    tuning_roc_auc: float


def _fit_predict(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, train_idx, test_idx):
    fitted = clone(pipeline).fit(X.iloc[train_idx], y.iloc[train_idx])
    return test_idx, fitted.predict_proba(X.iloc[test_idx])[:, 1]


def out_of_fold(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    folds: int,
    repeats: int,
    seed: int,
    n_jobs: int = 1,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(test indices, predicted probabilities) for every fold of a repeated stratified CV.

    Folds run in ``n_jobs`` processes; for fast models one process is quicker than shipping
    the data to workers.
    """
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return Parallel(n_jobs=n_jobs)(
        delayed(_fit_predict)(pipeline, X, y, train_idx, test_idx)
        for train_idx, test_idx in splitter.split(X, y)
    )


def cross_validate(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    settings: Settings,
    *,
    seed: int,
    n_jobs: int = 1,
) -> CrossValidation:
    folds = out_of_fold(
        pipeline,
        X,
        y,
        folds=settings.cv_folds,
        repeats=settings.cv_repeats,
        seed=seed,
        n_jobs=n_jobs,
    )
    pooled_y = np.concatenate([y.to_numpy()[idx] for idx, _ in folds])
    pooled_p = np.concatenate([proba for _, proba in folds])
    threshold = choose_threshold(pooled_y, pooled_p, settings.target_recall)
    fold_metrics = [
        classification_metrics(y.to_numpy()[idx], proba, threshold) for idx, proba in folds
    ]
    return CrossValidation(threshold=threshold, fold_metrics=fold_metrics)


def tune(family: str, X: pd.DataFrame, y: pd.Series, settings: Settings) -> tuple[Params, float]:
    """Optuna search maximising mean CV ROC-AUC of the uncalibrated model (ranking only)."""

    def objective(trial: optuna.Trial) -> float:
        pipeline = build_pipeline(
            family, suggest_params(family, trial), seed=settings.seed, calibrated=False
        )
        folds = out_of_fold(
            pipeline,
            X,
            y,
            folds=settings.tuning_cv_folds,
            repeats=settings.tuning_cv_repeats,
            seed=settings.seed,
            n_jobs=_n_jobs(family),
        )
        return float(np.mean([roc_auc_score(y.to_numpy()[idx], p) for idx, p in folds]))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.seed)
    )
    study.optimize(objective, n_trials=settings.tuning_trials)
    return dict(study.best_params), float(study.best_value)


def fit_candidate(family: str, train_frame: pd.DataFrame, settings: Settings) -> FittedCandidate:
    """Tune, cross-validate (calibrated, with a different CV seed) and fit one model family."""
    X, y = feature_frame(train_frame), target(train_frame)
    if y.nunique() != 2:
        raise TrainingError("the training part needs both classes of the target")
    params, tuning_roc_auc = tune(family, X, y, settings)
    cv = cross_validate(
        build_pipeline(family, params, seed=settings.seed),
        X,
        y,
        settings,
        seed=settings.seed + 1,
        n_jobs=_n_jobs(family),
    )
    model = build_pipeline(family, params, seed=settings.seed, threshold=cv.threshold).fit(X, y)
    log.info(
        "%s: CV ROC-AUC %.4f, threshold %.4f",
        family,
        cv.summary()["roc_auc"]["mean"],
        cv.threshold,
    )
    return FittedCandidate(family, params, model, cv.threshold, cv, tuning_roc_auc)


@dataclass(frozen=True)
class TrainingResult:
    parent_run_id: str
    data_version: str
    candidate_run_ids: dict[str, str]


def training_fingerprint(split: SplitResult, settings: Settings) -> str:
    """Identifies what a training run depends on; equal fingerprints give equal models."""
    inputs = {
        "data_version": split.data_version,
        "seed": settings.seed,
        "test_size": settings.test_size,
        "cv": [
            settings.cv_folds,
            settings.cv_repeats,
            settings.tuning_cv_folds,
            settings.tuning_cv_repeats,
        ],
        "tuning_trials": settings.tuning_trials,
        "families": list(settings.model_families),
        "target_recall": settings.target_recall,
        "code": [__version__, code_version()],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def train(
    split: SplitResult,
    lake: Lake,
    settings: Settings,
    *,
    on_candidate: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Fit every configured family; track one parent MLflow run with a nested run per family."""
    connect(settings)
    train_frame = read_frame(lake, split.train_key)
    example = feature_frame(train_frame.head(5))
    run_ids: dict[str, str] = {}
    with mlflow.start_run(run_name=f"pipeline-{split.data_version[:12]}") as parent:
        mlflow.set_tags(
            {
                TAG_ROLE: "pipeline",
                TAG_DATA_VERSION: split.data_version,
                TAG_FINGERPRINT: training_fingerprint(split, settings),
                "mlflow.source.git.commit": code_version() or "unknown",
            }
        )
        mlflow.log_params(
            asdict(split)
            | {
                "cv_folds": settings.cv_folds,
                "cv_repeats": settings.cv_repeats,
                "tuning_trials": settings.tuning_trials,
                "target_recall": settings.target_recall,
            }
        )
        report = validation_report_key(split.data_version)
        if lake.exists(report):
            mlflow.log_dict(read_json(lake, report), "validation/report.json")
        mlflow.log_dict(package_versions(), "environment/packages.json")
        for family in settings.model_families:
            if on_candidate:
                on_candidate(family)
            candidate = fit_candidate(family, train_frame, settings)
            with mlflow.start_run(run_name=family, nested=True) as child:
                mlflow.set_tags({TAG_ROLE: "candidate", TAG_FAMILY: family})
                mlflow.log_params({f"model.{k}": v for k, v in candidate.params.items()})
                mlflow.log_metrics(
                    flat_metrics("cv_", candidate.cv.summary())
                    | {
                        "decision_threshold": candidate.threshold,
                        "tuning_roc_auc": candidate.tuning_roc_auc,
                    }
                )
                mlflow.log_dict({"folds": candidate.cv.fold_metrics}, "cv/fold_metrics.json")
                model_uri = log_model(
                    candidate.model,
                    example,
                    model_metadata={
                        "decision_threshold": candidate.threshold,
                        "target_recall": settings.target_recall,
                        "data_version": split.data_version,
                        "family": family,
                    },
                )
                mlflow.set_tag(TAG_MODEL_URI, model_uri)
                run_ids[family] = child.info.run_id
    return TrainingResult(parent.info.run_id, split.data_version, run_ids)
