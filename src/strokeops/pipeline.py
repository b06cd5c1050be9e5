"""The main job: wires the stage functions from raw file to a gated champion.

This module holds no ML logic; the CLI and the Airflow DAGs call the same stage functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strokeops.config import Settings
from strokeops.evaluation import EvaluationResult, evaluate
from strokeops.ingest import IngestResult, ingest
from strokeops.promotion import GateDecision, promote
from strokeops.registry import RegisteredVersion, aliases_of, register
from strokeops.split import SplitResult, split
from strokeops.storage import S3Options, check_lake, open_lake
from strokeops.tracking import connect
from strokeops.training import TrainingResult, train
from strokeops.validation import ValidationResult, validate

log = logging.getLogger(__name__)

STAGES = ("ingest", "validate", "split", "train", "evaluate", "register", "promote")


@dataclass(frozen=True)
class RunSummary:
    ingest: IngestResult
    validation: ValidationResult
    split: SplitResult
    training: TrainingResult
    evaluation: EvaluationResult
    registered: RegisteredVersion
    gate: GateDecision
    aliases: list[str]
    finished_at: str

    def as_dict(self) -> dict[str, Any]:
        winner = self.evaluation.winner
        return {
            "finished_at": self.finished_at,
            "data_version": self.ingest.data_version,
            "data_version_already_present": self.ingest.already_present,
            "validation_report": self.validation.report_key,
            "split": asdict(self.split),
            "pipeline_run_id": self.training.parent_run_id,
            "model": {
                "name": self.registered.name,
                "version": self.registered.version,
                "aliases": self.aliases,
                "reused_existing_version": self.registered.reused,
                "family": winner.family,
                "decision_threshold": winner.threshold,
            },
            "gate": self.gate.as_dict(),
            "metrics": {
                "cv": winner.cv,
                "holdout": winner.holdout,
                "holdout_intervals": winner.holdout_intervals,
                "subgroups": winner.subgroups,
            },
            "candidates": {
                c.family: {
                    "run_id": c.run_id,
                    "cv_roc_auc": c.cv["roc_auc"]["mean"],
                    "cv_pr_auc": c.cv["pr_auc"]["mean"],
                    "cv_brier": c.cv["brier"]["mean"],
                    "holdout_roc_auc": c.holdout["roc_auc"],
                }
                for c in self.evaluation.candidates
            },
        }


def write_summary(summary: RunSummary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.as_dict(), indent=2, sort_keys=True, default=str))


def run_pipeline(
    settings: Settings,
    *,
    accept_drift: bool = False,
    on_stage: Callable[[str], None] = lambda stage: None,
    on_candidate: Callable[[str], None] | None = None,
) -> RunSummary:
    """Every stage in order; a failing stage raises and nothing after it runs.

    The lake is checked first (put, get and delete of a probe): a misconfigured or unreachable
    S3 lake stops the run with a StorageError before any work."""
    lake = open_lake(settings)
    check_lake(lake)
    on_stage("ingest")
    ingested = ingest(settings.data, lake, s3=S3Options.from_settings(settings))
    on_stage("validate")
    validation = validate(ingested.data_version, lake, settings, accept_drift=accept_drift)
    on_stage("split")
    split_result = split(
        ingested.data_version, lake, seed=settings.seed, test_size=settings.test_size
    )
    on_stage("train")
    training = train(split_result, lake, settings, on_candidate=on_candidate)
    on_stage("evaluate")
    evaluation = evaluate(training.parent_run_id, lake, settings)
    on_stage("register")
    registered = register(training.parent_run_id, lake, settings)
    on_stage("promote")
    gate = promote(registered.version, lake, settings, pipeline_run_id=training.parent_run_id)
    summary = RunSummary(
        ingest=ingested,
        validation=validation,
        split=split_result,
        training=training,
        evaluation=evaluation,
        registered=registered,
        gate=gate,
        aliases=aliases_of(connect(settings), registered.name, registered.version),
        finished_at=datetime.now(UTC).isoformat(),
    )
    write_summary(summary, settings.summary_path)
    return summary
