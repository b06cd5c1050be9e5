"""Both DAGs end to end with real Airflow (``dag.test()``, SQLite metadata DB) on generated data.

The runs: stroke_etl, then stroke_training without conf (it finds the data through the asset
event the ETL published), then both again on the same file, stroke_training this time named the
data version in its conf. ``dag.test()`` makes manual runs, so the scheduler's asset trigger
itself is not exercised here (test_dagbag checks the schedule and the triggering-event path).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

from strokeops.config import Settings
from strokeops.registry import CHAMPION
from strokeops.synthetic import generate_patients, to_csv_bytes
from strokeops.tracking import connect

pytestmark = pytest.mark.airflow

FAST_SETTINGS = {
    "STROKEOPS_TUNING_TRIALS": "2",
    "STROKEOPS_CV_REPEATS": "1",
    "STROKEOPS_MODEL_FAMILIES": "logistic_regression",
    "STROKEOPS_BOOTSTRAP_SAMPLES": "200",
}
PROCESSED_URI = "strokeops://processed/stroke"


@dataclass(frozen=True)
class Run:
    state: str
    run_id: str
    xcoms: dict[str, Any]  # task id -> its return value


@dataclass(frozen=True)
class Runs:
    data_sha256: str
    settings: Settings
    etl: Run
    training: Run
    etl_again: Run
    training_again: Run
    asset_extras: list[dict[str, Any]]
    log_lines: list[str]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _run(dag, **kwargs: Any) -> Run:
    dag_run = dag.test(**kwargs)
    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag.dag_id, key="return_value")
        ).all()
        xcoms = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    return Run(str(dag_run.state), dag_run.run_id, xcoms)


@pytest.fixture(scope="module")
def runs(airflow_db: Path, dags_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("dag-run")
    data = root / "patients.csv"
    data.write_bytes(to_csv_bytes(generate_patients(2500, seed=3)))
    handler = _Lines()
    logger = logging.getLogger("strokeops.dags")
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("STROKEOPS_")]:
            mp.delenv(name)
        for name, value in FAST_SETTINGS.items():
            mp.setenv(name, value)
        mp.setenv("STROKEOPS_DATA", str(data))
        mp.setenv("STROKEOPS_STATE_DIR", str(root / "state"))
        mp.chdir(root)
        logger.addHandler(handler)
        try:
            dags = DagBag(dag_folder=str(dags_folder)).dags
            etl = _run(dags["stroke_etl"])
            training = _run(dags["stroke_training"])
            etl_again = _run(dags["stroke_etl"])
            training_again = _run(
                dags["stroke_training"], run_conf={"data_version": etl.xcoms["ingest"]}
            )
        finally:
            logger.removeHandler(handler)
    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == PROCESSED_URI)
            .order_by(AssetEvent.timestamp)
        ).all()
    return Runs(
        data_sha256=hashlib.sha256(data.read_bytes()).hexdigest(),
        settings=Settings(state_dir=root / "state"),
        etl=etl,
        training=training,
        etl_again=etl_again,
        training_again=training_again,
        asset_extras=list(extras),
        log_lines=handler.lines,
    )


def test_etl_run_succeeds_with_the_data_version_in_xcom(runs: Runs) -> None:
    assert runs.etl.state == "success"
    assert runs.etl.xcoms["ingest"] == runs.data_sha256
    assert runs.etl.xcoms["validate"] == runs.data_sha256
    prefix = f"processed/{runs.data_sha256}/split-seed42-test0.2"
    assert runs.etl.xcoms["split"] == {
        "data_version": runs.data_sha256,
        "seed": 42,
        "test_size": 0.2,
        "train_key": f"{prefix}/train.parquet",
        "test_key": f"{prefix}/test.parquet",
        "n_train": 2000,
        "n_test": 500,
    }


def test_each_etl_run_publishes_the_split_as_an_asset_event(runs: Runs) -> None:
    assert runs.asset_extras == [runs.etl.xcoms["split"], runs.etl_again.xcoms["split"]]


def test_training_finds_the_data_through_the_asset_event(runs: Runs) -> None:
    assert runs.training.state == "success"
    trained = runs.training.xcoms["train"]
    assert trained["data_version"] == runs.data_sha256
    assert trained["data_from"].startswith("the latest asset event, of ")
    assert runs.training.xcoms["evaluate"]["winner"] == "logistic_regression"


def test_training_registers_and_promotes_a_champion(runs: Runs) -> None:
    assert runs.training.xcoms["register"] == {
        "run_id": runs.training.xcoms["train"]["run_id"],
        "version": "1",
        "reused": False,
    }
    assert runs.training.xcoms["promote"] == {
        "promoted": True,
        "reason": "promoted: first model to clear the quality floors",
        "version": "1",
    }
    client = connect(runs.settings)
    champion = client.get_model_version_by_alias(runs.settings.model_name, CHAMPION)
    assert str(champion.version) == "1"
    assert champion.tags["strokeops.data_version"] == runs.data_sha256
    assert champion.tags["strokeops.gate_decision"] == "promoted"
    assert (runs.settings.state_dir / "mlflow.db").is_file()


def test_gate_decisions_are_in_the_task_log(runs: Runs) -> None:
    decisions = [line for line in runs.log_lines if line.startswith("gate decision")]
    assert decisions == [
        "gate decision for version 1: promoted: first model to clear the quality floors",
        "gate decision for version 1: version 1 is already the champion; kept",
    ]


def test_rerun_on_unchanged_data_reuses_the_data_and_model_versions(runs: Runs) -> None:
    assert (runs.etl_again.state, runs.training_again.state) == ("success", "success")
    assert runs.etl_again.xcoms == runs.etl.xcoms
    lake_versions = sorted(p.name for p in (runs.settings.lake_path / "raw").iterdir())
    assert lake_versions == [runs.data_sha256]

    again = runs.training_again.xcoms
    assert again["train"]["data_from"] == "the data_version param"
    assert again["train"]["run_id"] != runs.training.xcoms["train"]["run_id"]
    assert again["register"] == {"run_id": again["train"]["run_id"], "version": "1", "reused": True}
    client = connect(runs.settings)
    versions = client.search_model_versions(f"name = '{runs.settings.model_name}'")
    assert [str(v.version) for v in versions] == ["1"]


def test_rerun_records_a_gate_decision(runs: Runs) -> None:
    again = runs.training_again.xcoms
    assert again["promote"] == {
        "promoted": True,
        "reason": "version 1 is already the champion; kept",
        "version": "1",
    }
    tags = connect(runs.settings).get_run(again["train"]["run_id"]).data.tags
    assert tags["strokeops.gate_decision"] == "promoted"
    assert tags["strokeops.gate_reason"] == "version 1 is already the champion; kept"
