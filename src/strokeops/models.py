"""Model families: how each candidate Pipeline is built and which hyperparameters Optuna tunes.

Every candidate is one scikit-learn Pipeline: preprocessing, then a classifier calibrated with
``CalibratedClassifierCV`` (fitted inside whatever data the Pipeline is fitted on, so nothing
leaks across CV folds). Class imbalance is a tuned choice of class weights, made harmless to the
probabilities by that calibration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline

from strokeops.features import build_preprocessor

CALIBRATION_FOLDS = 3

Params = dict[str, Any]


def _suggest_logistic(trial: optuna.Trial) -> Params:
    return {
        "C": trial.suggest_float("C", 1e-3, 10.0, log=True),
        "class_weight": trial.suggest_categorical("class_weight", [None, "balanced"]),
    }


def _suggest_forest(trial: optuna.Trial) -> Params:
    return {
        "max_depth": trial.suggest_int("max_depth", 3, 12),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 80, log=True),
        "max_features": trial.suggest_float("max_features", 0.2, 0.8),
        "class_weight": trial.suggest_categorical("class_weight", [None, "balanced_subsample"]),
    }


def _suggest_boosting(trial: optuna.Trial) -> Params:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_iter": trial.suggest_int("max_iter", 50, 200, step=25),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 3, 31, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 20, 200, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-4, 10.0, log=True),
        "class_weight": trial.suggest_categorical("class_weight", [None, "balanced"]),
    }


def _logistic(params: Params, seed: int) -> ClassifierMixin:
    return LogisticRegression(max_iter=5000, random_state=seed, **params)


def _forest(params: Params, seed: int) -> ClassifierMixin:
    return RandomForestClassifier(n_estimators=80, n_jobs=1, random_state=seed, **params)


def _boosting(params: Params, seed: int) -> ClassifierMixin:
    return HistGradientBoostingClassifier(early_stopping=False, random_state=seed, **params)


@dataclass(frozen=True)
class Family:
    suggest: Callable[[optuna.Trial], Params]
    build: Callable[[Params, int], ClassifierMixin]
    scaled_inputs: bool
    fast: bool  # cheap enough that fitting folds in one process beats a process pool


FAMILIES: dict[str, Family] = {
    "logistic_regression": Family(_suggest_logistic, _logistic, scaled_inputs=True, fast=True),
    "random_forest": Family(_suggest_forest, _forest, scaled_inputs=False, fast=False),
    "hist_gradient_boosting": Family(_suggest_boosting, _boosting, scaled_inputs=False, fast=False),
}


def suggest_params(family: str, trial: optuna.Trial) -> Params:
    return FAMILIES[family].suggest(trial)


def build_estimator(family: str, params: Params, seed: int) -> ClassifierMixin:
    return FAMILIES[family].build(params, seed)


def build_pipeline(
    family: str,
    params: Params,
    *,
    seed: int,
    calibrated: bool = True,
    threshold: float | None = None,
) -> Pipeline:
    """The candidate Pipeline; with ``threshold``, ``predict`` applies that decision threshold."""
    classifier: ClassifierMixin = build_estimator(family, params, seed)
    if calibrated:
        classifier = CalibratedClassifierCV(classifier, method="sigmoid", cv=CALIBRATION_FOLDS)
    if threshold is not None:
        classifier = FixedThresholdClassifier(
            classifier, threshold=threshold, response_method="predict_proba"
        )
    return Pipeline(
        [
            ("preprocess", build_preprocessor(scale=FAMILIES[family].scaled_inputs)),
            ("classifier", classifier),
        ]
    )
