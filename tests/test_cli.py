"""The strokeops command on bad inputs: a non-zero exit, a message naming the problem, and no
registered model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from strokeops.cli import app
from strokeops.synthetic import generate_patients, to_csv_bytes

runner = CliRunner()


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    return path


def _frame_bytes(change) -> bytes:
    frame = generate_patients(1000, seed=5).astype({"age": object, "work_type": object})
    return to_csv_bytes(change(frame))


def _set(column: str, row: int, value) -> callable:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame

    return change


BAD_INPUTS = {
    "empty file": (b"", "the data source is empty"),
    "not a CSV": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", "not a UTF-8 text CSV"),
    "missing column": (
        _frame_bytes(lambda f: f.drop(columns="smoking_status")),
        "required column 'smoking_status' is missing",
    ),
    "non-numeric age": (
        _frame_bytes(_set("age", 3, "forty")),
        "column 'age' broke coerce_dtype('float64') in 1 row(s) (line 5: 'forty')",
    ),
    "unknown category": (
        _frame_bytes(_set("work_type", 0, "Astronaut")),
        "column 'work_type' broke isin(",
    ),
    "all one class": (
        _frame_bytes(lambda f: f.assign(stroke=0)),
        "the table broke the rule 'stroke has both classes'",
    ),
    "too few rows": (
        _frame_bytes(lambda f: f.head(100)),
        "the table broke the rule 'at least 500 rows'; "
        "column 'stroke' broke the rule 'at least 25 rows of each class'",
    ),
    "bmi never measured": (
        _frame_bytes(lambda f: f.assign(bmi=float("nan"))),
        "column 'bmi' broke the rule 'at most 50% missing'",
    ),
    "JSON": (b'[{"id": 1, "age": 67}]', "the file looks like JSON, not a comma-separated CSV"),
    "tab-separated": (
        _frame_bytes(lambda f: f).replace(b",", b"\t"),
        "the file looks tab-separated; a comma-separated CSV is expected",
    ),
}


def _run(env: dict[str, str], *args: str):
    return runner.invoke(app, list(args) or ["run"], env=env)


def _no_registered_model(state_dir: Path) -> bool:
    database = state_dir / "mlflow.db"
    if not database.exists():
        return True
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{database}").search_registered_models() == []


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_stops_the_run(tmp_path: Path, case: str) -> None:
    content, message = BAD_INPUTS[case]
    state = tmp_path / "state"
    env = {"STROKEOPS_DATA": str(_write(tmp_path, content)), "STROKEOPS_STATE_DIR": str(state)}
    result = _run(env)
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
    assert _no_registered_model(state)


def test_missing_file_says_where_to_put_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "stroke.csv"
    result = _run({"STROKEOPS_DATA": str(missing), "STROKEOPS_STATE_DIR": str(tmp_path / "s")})
    output = " ".join(result.output.split())
    assert result.exit_code == 1
    assert f"data file not found: {missing}" in output
    assert "STROKEOPS_DATA" in output
    assert "Kaggle" in output
    assert _no_registered_model(tmp_path / "s")


def test_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    result = _run({"STROKEOPS_DATA": str(tmp_path), "STROKEOPS_STATE_DIR": str(tmp_path / "s")})
    assert result.exit_code == 1
    assert f"the data source is a directory, not a file: {tmp_path}" in result.output


def test_failed_validation_saves_its_report(tmp_path: Path) -> None:
    import json

    content, _ = BAD_INPUTS["non-numeric age"]
    state = tmp_path / "state"
    env = {"STROKEOPS_DATA": str(_write(tmp_path, content)), "STROKEOPS_STATE_DIR": str(state)}
    result = _run(env)
    assert "report saved at reports/" in result.output
    (report_path,) = (state / "lake" / "reports").glob("*/validation.json")
    report = json.loads(report_path.read_text())
    assert report["passed"] is False
    assert report["errors"] == [
        {
            "column": "age",
            "rule": "coerce_dtype('float64')",
            "n_failures": 1,
            "examples": [{"line": 5, "value": "forty"}],
        }
    ]
    assert not list((state / "lake").glob("processed/*/validated.parquet"))


def test_invalid_configuration_is_named(tmp_path: Path) -> None:
    result = _run({"STROKEOPS_TEST_SIZE": "0.9", "STROKEOPS_STATE_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "STROKEOPS_TEST_SIZE" in result.output


def test_serve_refuses_a_state_dir_without_a_registry(tmp_path: Path) -> None:
    mistyped = tmp_path / "no-such-state"
    result = _run({"STROKEOPS_STATE_DIR": str(mistyped)}, "serve")
    assert result.exit_code == 2
    assert f"no registry at {mistyped / 'mlflow.db'}" in " ".join(result.output.split())
    assert not mistyped.exists()  # nothing was created


def test_stage_subcommands_chain(tmp_path: Path, patients_csv: Path) -> None:
    env = {"STROKEOPS_DATA": str(patients_csv), "STROKEOPS_STATE_DIR": str(tmp_path / "s")}
    ingested = _run(env, "ingest")
    assert ingested.exit_code == 0, ingested.output
    version = ingested.output.strip()
    assert len(version) == 64
    validated = _run(env, "validate", version[:12])  # the short form `run` prints
    assert validated.output.startswith("valid: 2000 rows")
    escape = _run(env, "validate", "../../etc")
    assert escape.exit_code == 1
    assert "'../../etc' is not a data version" in escape.output
    split = _run(env, "split", version)
    assert "train 1600 rows" in split.output
    missing = _run(env, "train", "0" * 64)
    assert missing.exit_code == 1
    assert "no split of 000000000000" in missing.output
