"""Tracking, registration and the promotion gate, with a real MLflow store (SQLite) on
generated data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import pytest

from strokeops.config import Settings
from strokeops.errors import NotFoundError
from strokeops.evaluation import evaluate
from strokeops.ingest import ingest
from strokeops.promotion import gate_checks, promote
from strokeops.registry import CHALLENGER, CHAMPION, register
from strokeops.schema import FEATURES
from strokeops.split import split
from strokeops.storage import LocalLake
from strokeops.synthetic import generate_patients, to_csv_bytes
from strokeops.tracking import connect
from strokeops.training import train
from strokeops.validation import validate


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One small pipeline run up to evaluation, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("registry")
    data = root / "patients.csv"
    data.write_bytes(to_csv_bytes(generate_patients(2500, seed=3)))
    settings = Settings(
        data=str(data),
        state_dir=root / "state",
        tuning_trials=2,
        cv_repeats=1,
        bootstrap_samples=200,
    )
    lake = LocalLake(settings.lake_path)
    version = ingest(settings.data, lake).data_version
    validate(version, lake, settings)
    split_result = split(version, lake, seed=settings.seed, test_size=settings.test_size)
    training = train(split_result, lake, settings)
    evaluation = evaluate(training.parent_run_id, lake, settings)
    return settings, lake, split_result, training, evaluation


def test_each_candidate_is_a_nested_run_with_a_signed_model(trained) -> None:
    settings, _, _, training, _ = trained
    client = connect(settings)
    assert set(training.candidate_run_ids) == set(settings.model_families)
    for run_id in training.candidate_run_ids.values():
        run = client.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == training.parent_run_id
        info = mlflow.models.get_model_info(run.data.tags["strokeops.model_uri"])
        assert info.signature is not None
        assert info.signature.inputs.input_names() == list(FEATURES)
        assert info.saved_input_example_info is not None
        assert info.metadata["decision_threshold"] == run.data.metrics["decision_threshold"]


def test_parent_run_records_provenance(trained) -> None:
    settings, _, split_result, training, _ = trained
    client = connect(settings)
    parent = client.get_run(training.parent_run_id)
    assert parent.data.params["data_version"] == split_result.data_version
    assert parent.data.tags["strokeops.data_version"] == split_result.data_version
    assert len(parent.data.tags["strokeops.fingerprint"]) == 64
    artifacts = {a.path for a in client.list_artifacts(training.parent_run_id, "validation")}
    assert artifacts == {"validation/report.json"}
    packages = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/environment/packages.json")
    assert {"scikit-learn", "mlflow", "pandas", "strokeops"} <= set(packages)


def test_evaluation_logs_plots_and_holdout_metrics(trained) -> None:
    settings, _, _, _, evaluation = trained
    client = connect(settings)
    for candidate in evaluation.candidates:
        plots = {a.path for a in client.list_artifacts(candidate.run_id, "plots")}
        assert plots == {
            f"plots/{name}.png"
            for name in (
                "roc",
                "precision_recall",
                "calibration",
                "confusion_matrix",
                "feature_importance",
            )
        }
        metrics = client.get_run(candidate.run_id).data.metrics
        assert metrics["holdout_roc_auc"] == candidate.holdout["roc_auc"]
        low, high = candidate.holdout_intervals["roc_auc"]
        assert low <= candidate.holdout["roc_auc"] <= high
        assert set(candidate.subgroups) >= {"sex Female", "sex Male", "age 65+"}


def test_winner_is_chosen_on_training_cv(trained) -> None:
    _, _, _, _, evaluation = trained
    best_cv = max(c.cv["roc_auc"]["mean"] for c in evaluation.candidates)
    assert evaluation.winner.cv["roc_auc"]["mean"] == best_cv


def test_register_then_promote_the_first_model(trained) -> None:
    settings, lake, _, training, _ = trained
    client = connect(settings)
    registered = register(training.parent_run_id, lake, settings)
    assert (registered.version, registered.reused) == ("1", False)
    tags = client.get_model_version(settings.model_name, "1").tags
    spec = mlflow.artifacts.load_dict(tags["strokeops.compiled_uri"])
    assert spec["format"] == 1
    assert float(tags["strokeops.compiled_max_abs_diff"]) <= 1e-6
    assert str(client.get_model_version_by_alias(settings.model_name, CHALLENGER).version) == "1"

    decision = promote("1", lake, settings)
    assert decision.promoted
    assert decision.reason == "promoted: first model to clear the quality floors"
    version = client.get_model_version_by_alias(settings.model_name, CHAMPION)
    assert str(version.version) == "1"
    assert version.tags["strokeops.gate_decision"] == "promoted"
    assert version.tags["strokeops.gate_reason"] == decision.reason

    again = register(training.parent_run_id, lake, settings)
    assert (again.version, again.reused) == ("1", True)
    kept = promote("1", lake, settings)
    assert kept.reason == "version 1 is already the champion; kept"


def test_a_retrained_model_goes_through_the_gate(trained) -> None:
    settings, lake, split_result, _, _ = trained
    other_seed = settings.model_copy(
        update={"seed": settings.seed + 7, "model_families": ("logistic_regression",)}
    )
    training = train(split_result, lake, other_seed)
    evaluate(training.parent_run_id, lake, other_seed)
    registered = register(training.parent_run_id, lake, other_seed)
    assert not registered.reused
    decision = promote(registered.version, lake, other_seed)
    assert decision.champion_before == "1"
    assert [c.name for c in decision.checks][-2:] == ["holdout_roc_auc", "holdout_brier"]
    version = connect(settings).get_model_version(settings.model_name, registered.version)
    assert version.tags["strokeops.gate_decision"] == (
        "promoted" if decision.promoted else "rejected"
    )


GOOD = {
    "cv_roc_auc": 0.85,
    "cv_brier": 0.042,
    "holdout_roc_auc": 0.84,
    "holdout_brier": 0.041,
    "holdout_mean_predicted": 0.050,
    "holdout_prevalence": 0.049,
}


@pytest.mark.parametrize(
    ("challenger", "champion", "failing"),
    [
        (GOOD, None, []),
        (GOOD | {"cv_roc_auc": 0.79}, None, ["cv_roc_auc"]),
        (GOOD | {"cv_brier": 0.06}, None, ["cv_brier"]),
        (GOOD | {"holdout_mean_predicted": 0.09}, None, ["holdout_calibration_gap"]),
        (GOOD, GOOD | {"holdout_roc_auc": 0.849}, []),
        (GOOD, GOOD | {"holdout_roc_auc": 0.86}, ["holdout_roc_auc"]),
        (GOOD | {"holdout_brier": 0.047}, GOOD, ["holdout_brier"]),
    ],
)
def test_gate_checks(challenger, champion, failing, settings: Settings) -> None:
    checks = gate_checks(challenger, champion, settings)
    assert [c.name for c in checks if not c.passed] == failing


def test_stages_name_what_is_missing(settings: Settings, tmp_path: Path) -> None:
    lake = LocalLake(settings.lake_path)
    with pytest.raises(NotFoundError, match="no MLflow run with id 'nope'"):
        evaluate("nope", lake, settings)
    with pytest.raises(NotFoundError, match="no MLflow run with id 'nope'"):
        register("nope", lake, settings)
    with pytest.raises(NotFoundError, match="registered model 'stroke-risk' has no version '9'"):
        promote("9", lake, settings)


def test_no_work_is_lost_between_stages(trained) -> None:
    # the split result carries only keys and counts; the frames live in the lake
    _, lake, split_result, _, _ = trained
    assert lake.exists(split_result.train_key)
    assert replace(split_result).n_train + split_result.n_test == 2500
