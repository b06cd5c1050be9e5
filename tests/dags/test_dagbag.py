"""The DAG files parse without errors or side effects and wire the stages as intended."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

from strokeops.config import Settings

PROCESSED = Asset(name="stroke_processed", uri="strokeops://processed/stroke", group="strokeops")
DATA_VERSION = "ab" * 32


@pytest.fixture(scope="module")
def parsed(dags_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """The DagBag, parsed from an empty working folder with the state dir pointing into it."""
    workdir = tmp_path_factory.mktemp("parse")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        mp.setenv("STROKEOPS_STATE_DIR", str(workdir / "state"))
        bag = DagBag(dag_folder=str(dags_folder))
    return bag, workdir


@pytest.fixture(scope="module")
def dags(parsed):
    bag, _ = parsed
    return bag.dags


def edges(dag) -> set[tuple[str, str]]:
    return {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}


def test_both_dags_parse_without_errors(parsed) -> None:
    bag, _ = parsed
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"stroke_etl", "stroke_training"}


def test_parsing_does_no_work(parsed) -> None:
    _, workdir = parsed
    assert list(workdir.iterdir()) == []  # no state dir, no lake, no MLflow store


def test_parsing_imports_only_the_settings(dags_folder: Path) -> None:
    """In a fresh interpreter: parsing imports the settings and the task defaults, no stage and
    no ML library."""
    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(dags_folder)!r})\n"
        "heavy = ('strokeops', 'mlflow', 'sklearn', 'optuna', 'pandera', 'matplotlib')\n"
        "print(json.dumps({'errors': bag.import_errors, 'dags': sorted(bag.dag_ids),\n"
        "    'modules': sorted(m for m in sys.modules if m.split('.')[0] in heavy)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "errors": {},
        "dags": ["stroke_etl", "stroke_training"],
        "modules": [
            "strokeops",
            "strokeops.config",
            "strokeops.errors",
            "strokeops.orchestration",
        ],
    }


def test_etl_tasks_and_edges(dags) -> None:
    etl = dags["stroke_etl"]
    assert sorted(etl.task_ids) == ["ingest", "split", "validate"]
    assert edges(etl) == {("ingest", "validate"), ("validate", "split")}
    assert etl.get_task("split").outlets == [PROCESSED]
    assert etl.get_task("ingest").outlets == []


def test_training_tasks_and_edges(dags) -> None:
    training = dags["stroke_training"]
    assert sorted(training.task_ids) == ["evaluate", "promote", "register", "train"]
    assert edges(training) == {
        ("train", "evaluate"),
        ("evaluate", "register"),
        ("register", "promote"),
    }
    assert training.get_task("train").inlets == [PROCESSED]


def test_training_is_scheduled_on_the_asset_the_split_publishes(dags) -> None:
    published = dags["stroke_etl"].get_task("split").outlets
    training = dags["stroke_training"]
    assert training.schedule == published[0] == PROCESSED
    assert type(training.timetable).__name__ == "AssetTriggeredTimetable"
    assert dags["stroke_etl"].schedule is None  # triggered by hand or by an external system


def test_params_default_to_the_settings_defaults(dags) -> None:
    defaults = {name: Settings.model_fields[name].default for name in ("data", "seed", "test_size")}
    assert dict(dags["stroke_etl"].params) == defaults | {"accept_drift": False}
    assert dict(dags["stroke_training"].params) == {
        "data_version": None,
        "seed": defaults["seed"],
        "test_size": defaults["test_size"],
    }


@pytest.mark.parametrize("dag_id", ["stroke_etl", "stroke_training"])
def test_every_task_retries_with_exponential_back_off(dags, dag_id: str) -> None:
    dag = dags[dag_id]
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.retries == 2, task.task_id
        assert task.retry_delay == timedelta(seconds=30), task.task_id
        assert task.retry_exponential_backoff == 2.0, task.task_id
        assert task.max_retry_delay == timedelta(minutes=10), task.task_id


@pytest.mark.parametrize("dag_id", ["stroke_etl", "stroke_training"])
def test_dict_results_are_one_xcom(dags, dag_id: str) -> None:
    assert not any(task.multiple_outputs for task in dags[dag_id].tasks)


# --- the helpers the tasks use, with stand-ins for Airflow's context objects ---------------


def _helper(dags, dag_id: str, task_id: str, name: str):
    return dags[dag_id].get_task(task_id).python_callable.__globals__[name]


ETL_PARAMS = {"data": "param.csv", "seed": 7, "test_size": 0.3, "accept_drift": False}


def test_etl_settings_come_from_the_environment_unless_the_conf_names_them(
    dags, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_for = _helper(dags, "stroke_etl", "ingest", "_settings")
    monkeypatch.setenv("STROKEOPS_DATA", "env.csv")
    monkeypatch.setenv("STROKEOPS_SEED", "43")
    untouched = settings_for(ETL_PARAMS, SimpleNamespace(conf={}))
    assert (untouched.data, untouched.seed, untouched.test_size) == ("env.csv", 43, 0.2)
    named = settings_for(ETL_PARAMS, SimpleNamespace(conf={"seed": 7, "test_size": 0.3}))
    assert (named.data, named.seed, named.test_size) == ("env.csv", 7, 0.3)


class FakeInletEvents:
    """``inlet_events[asset].ascending(False).limit(n)`` over a fixed list of events."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events
        self.newest_first = False

    def __getitem__(self, asset: Asset) -> FakeInletEvents:
        assert asset == PROCESSED
        return self

    def ascending(self, ascending: bool) -> FakeInletEvents:
        self.newest_first = not ascending
        return self

    def limit(self, n: int) -> list[Any]:
        ordered = sorted(self.events, key=lambda e: e.timestamp, reverse=self.newest_first)
        return ordered[:n]


def _event(data_version: str, minute: int, seed: int = 42) -> SimpleNamespace:
    return SimpleNamespace(
        extra={"data_version": data_version, "seed": seed, "test_size": 0.2},
        timestamp=datetime(2026, 12, 1, 12, minute, tzinfo=UTC),
    )


TRAINING_PARAMS = {"data_version": None, "seed": 42, "test_size": 0.2}


def test_training_uses_the_newest_triggering_event(dags) -> None:
    split_to_train = _helper(dags, "stroke_training", "train", "_split_to_train")
    events = {PROCESSED: [_event("new", 5, seed=3), _event("old", 1)]}
    chosen, source = split_to_train(
        TRAINING_PARAMS | {"data_version": "ignored"},
        SimpleNamespace(conf={}),
        events,
        FakeInletEvents([_event("latest", 9)]),
    )
    assert chosen == {"data_version": "new", "seed": 3, "test_size": 0.2}
    assert source == "the triggering asset event"


def test_training_without_an_event_uses_the_data_version_param(
    dags, monkeypatch: pytest.MonkeyPatch
) -> None:
    split_to_train = _helper(dags, "stroke_training", "train", "_split_to_train")
    monkeypatch.setenv("STROKEOPS_SEED", "43")
    params = TRAINING_PARAMS | {"data_version": DATA_VERSION, "test_size": 0.3}
    chosen, source = split_to_train(
        params, SimpleNamespace(conf={"test_size": 0.3}), {}, FakeInletEvents([])
    )
    assert chosen == {"data_version": DATA_VERSION, "seed": 43, "test_size": 0.3}
    assert source == "the data_version param"


def test_training_falls_back_to_the_latest_asset_event(dags) -> None:
    split_to_train = _helper(dags, "stroke_training", "train", "_split_to_train")
    inlet_events = FakeInletEvents([_event("old", 1), _event("latest", 9), _event("mid", 5)])
    chosen, source = split_to_train(TRAINING_PARAMS, SimpleNamespace(conf={}), {}, inlet_events)
    assert chosen == {"data_version": "latest", "seed": 42, "test_size": 0.2}
    assert source == "the latest asset event, of 2026-12-01T12:09:00+00:00"


def test_training_without_any_data_fails_without_retrying(dags) -> None:
    split_to_train = _helper(dags, "stroke_training", "train", "_split_to_train")
    with pytest.raises(AirflowFailException) as caught:
        split_to_train(TRAINING_PARAMS, SimpleNamespace(conf=None), {}, FakeInletEvents([]))
    assert str(caught.value) == (
        "no data to train on: strokeops://processed/stroke has no events yet. Run stroke_etl "
        'first, or trigger this DAG with {"data_version": "<sha256 or unique prefix>"}.'
    )
