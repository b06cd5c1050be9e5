"""The main job end to end on the real data set: `strokeops run`, twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from strokeops.cli import app
from strokeops.tracking import flat_metrics
from tests.conftest import REAL_DATA_SHA256

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(real_data_path: Path, tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("e2e") / "state"
    env = {"STROKEOPS_DATA": str(real_data_path), "STROKEOPS_STATE_DIR": str(state)}
    runner = CliRunner()
    summaries, outputs = [], []
    for _ in range(2):
        result = runner.invoke(app, ["run"], env=env)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
        summaries.append(json.loads((state / "last-run.json").read_text()))
    return state, summaries, outputs


def test_run_registers_a_champion(two_runs) -> None:
    state, (first, _), (output, _) = two_runs
    assert first["data_version"] == REAL_DATA_SHA256
    assert first["model"]["name"] == "stroke-risk"
    assert first["model"]["version"] == "1"
    assert first["model"]["aliases"] == ["challenger", "champion"]
    assert first["gate"]["promoted"] is True
    assert f"summary: {state / 'last-run.json'}" in " ".join(output.split()).replace("\n", "")
    client = MlflowClient(f"sqlite:///{state / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("stroke-risk", "champion")
    assert champion.tags["strokeops.data_version"] == REAL_DATA_SHA256


def test_champion_meets_the_cv_bars_on_the_real_data(two_runs) -> None:
    _, (first, _), _ = two_runs
    cv = first["metrics"]["cv"]
    assert cv["roc_auc"]["mean"] >= 0.83
    assert cv["pr_auc"]["mean"] >= 0.19
    assert cv["brier"]["mean"] <= 0.044
    holdout, intervals = first["metrics"]["holdout"], first["metrics"]["holdout_intervals"]
    assert holdout["n"] == 1022
    assert holdout["tp"] + holdout["fn"] == 50
    for name in ("roc_auc", "pr_auc", "brier", "recall", "precision", "f2"):
        low, high = intervals[name]
        assert low <= holdout[name] <= high
    assert {"sex Female", "sex Male", "age <45", "age 45-64", "age 65+"} <= set(
        first["metrics"]["subgroups"]
    )


def test_second_run_keeps_one_data_version_and_records_a_decision(two_runs) -> None:
    state, (first, second), (_, output) = two_runs
    assert second["data_version"] == first["data_version"]
    assert second["data_version_already_present"] is True
    assert [p.name for p in (state / "lake" / "raw").iterdir()] == [REAL_DATA_SHA256]
    assert second["model"]["version"] == first["model"]["version"]
    assert second["model"]["reused_existing_version"] is True
    assert second["gate"]["reason"] == "version 1 is already the champion; kept"
    assert "gate: version 1 is already the champion; kept" in output
    client = MlflowClient(f"sqlite:///{state / 'mlflow.db'}")
    run = client.get_run(second["pipeline_run_id"])
    assert run.data.tags["strokeops.gate_reason"] == second["gate"]["reason"]


def test_same_seed_and_data_give_the_same_metrics(two_runs) -> None:
    _, (first, second), _ = two_runs
    assert first["pipeline_run_id"] != second["pipeline_run_id"]
    expected = flat_metrics("", first["metrics"]["cv"] | {"holdout": first["metrics"]["holdout"]})
    actual = flat_metrics("", second["metrics"]["cv"] | {"holdout": second["metrics"]["holdout"]})
    assert actual == pytest.approx(expected, abs=1e-9, rel=0)
    for family, candidate in first["candidates"].items():
        other = second["candidates"][family]
        for metric in ("cv_roc_auc", "cv_pr_auc", "cv_brier", "holdout_roc_auc"):
            assert other[metric] == pytest.approx(candidate[metric], abs=1e-9, rel=0)
