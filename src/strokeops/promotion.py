"""Promote: the gate that decides whether the challenger replaces the champion.

Both models are scored on the challenger's held-out test set. The challenger takes
``champion`` only if it clears the absolute quality floors (on training CV), is calibrated on the
holdout, and is not worse than the current champion beyond the stated tolerances. The first model
that clears the floors becomes champion. The decision and its reason are tags on the version.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from strokeops.config import Settings
from strokeops.errors import NotFoundError
from strokeops.features import feature_frame, target
from strokeops.metrics import classification_metrics
from strokeops.registry import CHAMPION, TAG_PIPELINE_RUN, TAG_TEST_KEY, version_by_alias
from strokeops.storage import Lake, read_frame
from strokeops.tracking import connect

log = logging.getLogger(__name__)

TAG_DECISION = "strokeops.gate_decision"
TAG_REASON = "strokeops.gate_reason"


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float
    bound: float
    passed: bool
    rule: str


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    challenger_version: str
    champion_before: str | None
    champion_after: str | None
    checks: list[GateCheck]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_checks(
    challenger: dict[str, float], champion: dict[str, float] | None, settings: Settings
) -> list[GateCheck]:
    """The checks of the gate; ``challenger``/``champion`` hold cv_* and holdout_* metrics."""
    gap = abs(challenger["holdout_mean_predicted"] - challenger["holdout_prevalence"])
    checks = [
        GateCheck(
            "cv_roc_auc",
            challenger["cv_roc_auc"],
            settings.gate_min_cv_roc_auc,
            challenger["cv_roc_auc"] >= settings.gate_min_cv_roc_auc,
            ">= floor",
        ),
        GateCheck(
            "cv_brier",
            challenger["cv_brier"],
            settings.gate_max_cv_brier,
            challenger["cv_brier"] <= settings.gate_max_cv_brier,
            "<= ceiling",
        ),
        GateCheck(
            "holdout_roc_auc_floor",
            challenger["holdout_roc_auc"],
            settings.gate_min_holdout_roc_auc,
            challenger["holdout_roc_auc"] >= settings.gate_min_holdout_roc_auc,
            ">= floor",
        ),
        GateCheck(
            "holdout_calibration_gap",
            gap,
            settings.gate_max_calibration_gap,
            gap <= settings.gate_max_calibration_gap,
            "|mean risk - observed rate| <= limit",
        ),
    ]
    if champion is not None:
        auc_floor = champion["holdout_roc_auc"] - settings.gate_roc_auc_tolerance
        brier_ceiling = champion["holdout_brier"] + settings.gate_brier_tolerance
        checks += [
            GateCheck(
                "holdout_roc_auc",
                challenger["holdout_roc_auc"],
                auc_floor,
                challenger["holdout_roc_auc"] >= auc_floor,
                "not worse than champion beyond tolerance",
            ),
            GateCheck(
                "holdout_brier",
                challenger["holdout_brier"],
                brier_ceiling,
                challenger["holdout_brier"] <= brier_ceiling,
                "calibration not worse than champion beyond tolerance",
            ),
        ]
    return checks


def _holdout_metrics(model_uri: str, X, y: np.ndarray) -> dict[str, float]:
    probability = mlflow.sklearn.load_model(model_uri).predict_proba(X)[:, 1]
    metrics = classification_metrics(y, probability, threshold=0.5)
    return {
        f"holdout_{k}": metrics[k] for k in ("roc_auc", "brier", "mean_predicted", "prevalence")
    }


def promote(
    version: str, lake: Lake, settings: Settings, *, pipeline_run_id: str | None = None
) -> GateDecision:
    """Run the gate for a registered version; move ``champion`` if it passes.

    The decision is tagged on the version and on the pipeline run (``pipeline_run_id``, or the
    run that registered the version).
    """
    client = connect(settings)
    name = settings.model_name
    try:
        challenger = client.get_model_version(name, version)
    except MlflowException as exc:
        raise NotFoundError(f"registered model {name!r} has no version {version!r}") from exc
    if TAG_TEST_KEY not in challenger.tags:
        raise NotFoundError(f"{name} version {version} was not registered by strokeops")
    test_frame = read_frame(lake, challenger.tags[TAG_TEST_KEY])
    X, y = feature_frame(test_frame), target(test_frame).to_numpy()
    champion = version_by_alias(client, name, CHAMPION)
    champion_before = str(champion.version) if champion else None

    candidate_run = client.get_run(challenger.tags["strokeops.candidate_run_id"])
    challenger_metrics = _holdout_metrics(f"models:/{name}/{version}", X, y) | {
        "cv_roc_auc": candidate_run.data.metrics["cv_roc_auc_mean"],
        "cv_brier": candidate_run.data.metrics["cv_brier_mean"],
    }
    if champion_before == str(version):
        checks = gate_checks(challenger_metrics, None, settings)
        promoted, reason = True, f"version {version} is already the champion; kept"
    else:
        champion_metrics = (
            _holdout_metrics(f"models:/{name}/{champion_before}", X, y) if champion else None
        )
        checks = gate_checks(challenger_metrics, champion_metrics, settings)
        failed = [c for c in checks if not c.passed]
        promoted = not failed
        if failed:
            reason = "rejected: " + "; ".join(
                f"{c.name} {c.value:.4f} fails {c.rule} ({c.bound:.4f})" for c in failed
            )
        elif champion is None:
            reason = "promoted: first model to clear the quality floors"
        else:
            reason = (
                f"promoted: holdout ROC-AUC {challenger_metrics['holdout_roc_auc']:.4f} vs "
                f"champion v{champion_before} {champion_metrics['holdout_roc_auc']:.4f}, "
                "within tolerance and calibrated"
            )
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    decided_at = datetime.now(UTC).isoformat()
    for key, value in {
        TAG_DECISION: "promoted" if promoted else "rejected",
        TAG_REASON: reason,
        "strokeops.gate_decided_at": decided_at,
    }.items():
        client.set_model_version_tag(name, version, key, value)
        client.set_tag(pipeline_run_id or challenger.tags[TAG_PIPELINE_RUN], key, value)
    log.info("gate for %s v%s: %s", name, version, reason)
    return GateDecision(
        promoted=promoted,
        reason=reason,
        challenger_version=str(version),
        champion_before=champion_before,
        champion_after=str(version) if promoted else champion_before,
        checks=checks,
    )
