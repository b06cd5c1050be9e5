"""Compile a fitted model Pipeline into the JSON spec that ``strokeops.scoring`` serves from,
and verify it against the Pipeline before it may serve.

Calibrated logistic regression compiles completely (encoding + coefficients + calibrators);
other families compile their encoding and keep the fitted estimator for the last step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from strokeops.errors import StrokeOpsError
from strokeops.features import feature_frame
from strokeops.schema import FEATURES, TARGET
from strokeops.scoring import ESTIMATOR, LINEAR, SPEC_FORMAT, Scorer

VERIFY_TOLERANCE = 1e-6
HIGH_RISK_PREVALENCE_MULTIPLE = 4.0


class CompiledModelMismatchError(StrokeOpsError):
    """The compiled form does not reproduce the Pipeline's probabilities."""


def _encoding(preprocessor: ColumnTransformer) -> dict[str, Any]:
    numeric = preprocessor.named_transformers_["numeric"]
    imputer = numeric.named_steps["impute"]
    scaler = numeric.named_steps.get("scale")
    onehot = preprocessor.named_transformers_["categorical"]
    numeric_columns = list(imputer.feature_names_in_)
    indicator = imputer.indicator_
    return {
        "numeric": numeric_columns,
        "medians": imputer.statistics_.tolist(),
        "indicators": [numeric_columns[i] for i in (indicator.features_ if indicator else [])],
        "scale": (
            {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()} if scaler else None
        ),
        "categorical": {
            name: [str(c) for c in categories]
            for name, categories in zip(onehot.feature_names_in_, onehot.categories_, strict=True)
        },
        "binary": list(preprocessor.named_transformers_["binary"].feature_names_in_)
        if hasattr(preprocessor.named_transformers_["binary"], "feature_names_in_")
        else [c for name, _, cols in preprocessor.transformers_ if name == "binary" for c in cols],
    }


def _model(calibrated: CalibratedClassifierCV) -> dict[str, Any]:
    members = calibrated.calibrated_classifiers_
    if not all(isinstance(m.estimator, LogisticRegression) for m in members):
        return {"kind": ESTIMATOR}
    return {
        "kind": LINEAR,
        "members": [
            {
                "coef": m.estimator.coef_[0].tolist(),
                "intercept": float(m.estimator.intercept_[0]),
                "a": float(m.calibrators[0].a_),
                "b": float(m.calibrators[0].b_),
            }
            for m in members
        ],
    }


def risk_levels(threshold: float, prevalence: float) -> dict[str, float]:
    """Cut points: 'elevated' from the decision threshold, 'high' from 4x the base rate."""
    return {
        "elevated": threshold,
        "high": max(threshold, HIGH_RISK_PREVALENCE_MULTIPLE * prevalence),
    }


def compile_pipeline(model: Pipeline, train_frame: pd.DataFrame) -> dict[str, Any]:
    """The JSON-ready compiled spec of a fitted candidate Pipeline."""
    preprocessor: ColumnTransformer = model.named_steps["preprocess"]
    thresholded = model.named_steps["classifier"]
    threshold = float(thresholded.threshold)
    prevalence = float(train_frame[TARGET].mean())
    spec: dict[str, Any] = {
        "format": SPEC_FORMAT,
        "source_features": list(FEATURES),
        "feature_names": [str(n) for n in preprocessor.get_feature_names_out()],
        "encoding": _encoding(preprocessor),
        "model": _model(thresholded.estimator_),
        "threshold": threshold,
        "risk_levels": risk_levels(threshold, prevalence),
        "training_prevalence": prevalence,
    }
    spec["baseline"] = preprocessor.transform(feature_frame(train_frame)).mean(axis=0).tolist()
    return spec


def scorer_for(spec: dict[str, Any], model: Pipeline | None = None) -> Scorer:
    """A Scorer; 'estimator' specs need the fitted Pipeline for their last step."""
    if spec["model"]["kind"] == ESTIMATOR:
        if model is None:
            raise ValueError("this compiled model needs its fitted Pipeline")
        classifier = model.named_steps["classifier"]
        return Scorer(spec, estimator_proba=lambda X: classifier.predict_proba(X)[:, 1])
    return Scorer(spec)


def verify(spec: dict[str, Any], model: Pipeline, frame: pd.DataFrame) -> float:
    """Max |compiled - Pipeline| probability over ``frame``, for both serving paths (batch
    and single row); raises beyond the tolerance."""
    features = feature_frame(frame)
    scorer = scorer_for(spec, model)
    encoded = scorer.encode_columns(features, len(features))
    expected = model.predict_proba(features)[:, 1]
    rows = features.astype(object).where(features.notna(), None).to_dict("records")
    diffs = {"compiled model": float(np.max(np.abs(scorer.probability(encoded) - expected)))}
    if scorer.kind == ESTIMATOR:
        # the single-row path feeds the same estimator one encoded row at a time (calling it
        # row by row here would take seconds): its encoding must equal the batch encoding
        single_encoded = np.array([scorer.encode_one(row) for row in rows])
        diffs["single-row encoding"] = float(np.max(np.abs(single_encoded - encoded)))
    else:
        single = np.array([scorer.probability_of(row) for row in rows])
        diffs["single-row path"] = float(np.max(np.abs(single - expected)))
    for what, diff in diffs.items():
        _check(diff, what, frame)
    return max(diffs.values())


def _check(max_diff: float, what: str, frame: pd.DataFrame) -> None:
    if not max_diff <= VERIFY_TOLERANCE:
        raise CompiledModelMismatchError(
            f"the {what} differs from the Pipeline by {max_diff:.3g} "
            f"(tolerance {VERIFY_TOLERANCE:g}) on {len(frame)} rows; it may not serve"
        )
