"""The real stack end to end, on the real data set: SeaweedFS S3, the MLflow server on
PostgreSQL, real Airflow (its CLI, metadata DB in PostgreSQL) and the API; then S3 and MLflow
going down.

One stack (``strokeops.stack``, databases with a unique prefix on the machine's PostgreSQL, a
tmp state dir) serves the whole module and is torn down at its end. The DAGs run with
``airflow dags test`` in subprocesses whose environment is the stack's env file plus fast
training settings; like any client they hold the lake's S3 keys but none for MLflow's bucket:
the server proxies the artifacts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from strokeops.cli import app
from strokeops.config import Settings
from strokeops.serving.app import REGISTRY_CLIENT_DEFAULTS, create_app
from strokeops.serving.schemas import EXAMPLE
from strokeops.stack import (
    DEFAULT_POSTGRES_URL,
    Stack,
    StackConfig,
    StackError,
    connect_postgres,
    create_database,
    drop_database,
    group_members,
    venv_tool,
)
from tests.stack.conftest import weed_binary

pytestmark = pytest.mark.stack

FAST_SETTINGS = {
    "STROKEOPS_TUNING_TRIALS": "2",
    "STROKEOPS_CV_REPEATS": "1",
    "STROKEOPS_MODEL_FAMILIES": "logistic_regression",
    "STROKEOPS_BOOTSTRAP_SAMPLES": "200",
}
MODEL = "stroke-risk"
SPLIT = "split-seed42-test0.2"
PATIENT = EXAMPLE


@dataclass(frozen=True)
class RealStack:
    stack: Stack
    env: dict[str, str]  # of the Airflow CLI runs: the stack's env file and fast settings
    workdir: Path
    data_version: str
    etl: subprocess.CompletedProcess[str]
    training: subprocess.CompletedProcess[str]

    def query(self, database: str, sql: str, *args: Any) -> list[tuple]:
        connection = connect_postgres(self.stack.config.postgres_url, database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                return cursor.fetchall()
        finally:
            connection.close()

    def mlflow_query(self, sql: str, *args: Any) -> list[tuple]:
        return self.query(self.stack.config.mlflow_database, sql, *args)

    def objects(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.stack.s3.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv_tool("airflow")), *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def api_settings(self, state_dir: Path) -> Settings:
        return Settings(
            state_dir=state_dir,
            tracking_uri=self.stack.mlflow.url,
            prediction_log_url=self.stack.env["STROKEOPS_PREDICTION_LOG_URL"],
            log_flush_seconds=0.1,
        )


def _output(result: subprocess.CompletedProcess[str], chars: int = 4000) -> str:
    return (result.stdout + result.stderr)[-chars:]


def _require_postgres() -> None:
    """The machine's PostgreSQL (127.0.0.1:5432, trust auth); CI must have it."""
    probe = f"strokeops_probe_{uuid.uuid4().hex[:8]}"
    try:
        create_database(DEFAULT_POSTGRES_URL, probe)
        drop_database(DEFAULT_POSTGRES_URL, probe)
    except StackError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs PostgreSQL at 127.0.0.1:5432: {exc}")
        pytest.skip(f"no PostgreSQL to use at 127.0.0.1:5432: {exc}")


@pytest.fixture(scope="module")
def real(real_data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealStack]:
    """The stack up, then stroke_etl and stroke_training with real Airflow; torn down after."""
    weed_binary()  # skips (or fails in CI) without SeaweedFS
    _require_postgres()
    root = tmp_path_factory.mktemp("real-stack")
    config = StackConfig(
        state_dir=root / "state", database_prefix=f"strokeops_test_{uuid.uuid4().hex[:10]}"
    )
    stack = Stack.plan(config)
    try:
        stack.up()
        # Airflow's metadata DB in PostgreSQL, migrated; no `airflow standalone`: the runs are
        # `airflow dags test` (the scheduler's asset trigger is covered in tests/dags)
        stack.airflow.prepare()
        airflow_env = stack.airflow.environment()
        env = {k: v for k, v in airflow_env.items() if not k.startswith("STROKEOPS_")}
        env |= stack.env | FAST_SETTINGS
        env |= {
            "STROKEOPS_DATA": str(real_data_path),
            "STROKEOPS_STATE_DIR": str(root / "client-state"),
            # no AWS profile or key of the machine: MLflow artifacts must go through the server
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        }
        partial = RealStack(
            stack=stack,
            env=env,
            workdir=root,
            data_version=hashlib.sha256(real_data_path.read_bytes()).hexdigest(),
            etl=subprocess.CompletedProcess([], -1, "", "not run"),
            training=subprocess.CompletedProcess([], -1, "", "not run"),
        )
        etl = partial.airflow("dags", "test", "stroke_etl")
        assert etl.returncode == 0, f"stroke_etl failed:\n{_output(etl)}"
        training = partial.airflow("dags", "test", "stroke_training")
        assert training.returncode == 0, f"stroke_training failed:\n{_output(training)}"
        yield RealStack(**(partial.__dict__ | {"etl": etl, "training": training}))
    finally:
        stack.down()
        for name in config.databases:
            drop_database(config.postgres_url, name)


@pytest.fixture
def api_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry client's fail-fast settings, restored after the test."""
    for name, value in REGISTRY_CLIENT_DEFAULTS.items():
        monkeypatch.setenv(name, value)


def _services_up(real: RealStack) -> None:
    """Restart S3 and MLflow if a fault test left them stopped (no-op when they run)."""
    real.stack.start("s3")
    real.stack.start("mlflow")


def test_lake_bucket_holds_the_raw_and_processed_data(real: RealStack) -> None:
    _services_up(real)
    version = real.data_version
    keys = real.objects(real.stack.config.lake_bucket)
    for key in (
        f"raw/{version}/data.csv",
        f"raw/{version}/manifest.json",
        f"reports/{version}/validation.json",
        f"processed/{version}/{SPLIT}/train.parquet",
        f"processed/{version}/{SPLIT}/test.parquet",
    ):
        assert key in keys


def test_run_and_champion_are_in_postgres(real: RealStack) -> None:
    versions = real.mlflow_query(
        "SELECT version, run_id FROM model_versions WHERE name = %s", MODEL
    )
    assert [version for version, _ in versions] == [1]
    run_id = versions[0][1]
    aliases = dict(
        real.mlflow_query(
            "SELECT alias, version FROM registered_model_aliases WHERE name = %s", MODEL
        )
    )
    assert aliases["champion"] == 1
    tags = dict(
        real.mlflow_query(
            "SELECT key, value FROM model_version_tags WHERE name = %s AND version = 1", MODEL
        )
    )
    assert tags["strokeops.data_version"] == real.data_version
    assert tags["strokeops.gate_decision"] == "promoted"
    assert real.mlflow_query("SELECT status FROM runs WHERE run_uuid = %s", run_id) == [
        ("FINISHED",)
    ]
    # proxied artifacts: the experiment points at the server, the files are in S3
    (location,) = real.mlflow_query(
        "SELECT artifact_location FROM experiments WHERE name = %s", "stroke-risk"
    )[0]
    assert location.startswith("mlflow-artifacts:/")
    artifacts = real.objects(real.stack.config.mlflow_bucket)
    assert any(key.endswith("/MLmodel") for key in artifacts)


def test_api_serves_the_champion_and_logs_predictions_to_postgres(
    real: RealStack, tmp_path: Path, api_environment: None
) -> None:
    _services_up(real)
    with TestClient(create_app(real.api_settings(tmp_path / "api"))) as client:
        model = client.get("/v1/model").json()
        assert (model["version"], model["alias"]) == ("1", "champion")
        assert model["data_version"] == real.data_version
        request_ids = []
        for age in (35, 67, 81):
            response = client.post("/v1/predict", json=PATIENT | {"age": age})
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == "1"
            request_ids.append(response.json()["request_id"])
        deadline = time.monotonic() + 15
        rows: list[tuple] = []
        while len(rows) < len(request_ids) and time.monotonic() < deadline:
            time.sleep(0.2)
            with contextlib.suppress(psycopg2.errors.UndefinedTable):  # the writer makes it
                rows = real.query(
                    real.stack.config.predictions_database,
                    "SELECT request_id, model_version, age FROM prediction_log"
                    " WHERE request_id = ANY(%s)",
                    request_ids,
                )
    assert sorted(rows) == sorted(zip(request_ids, ["1"] * 3, [35.0, 67.0, 81.0], strict=True))


def test_etl_fails_clearly_while_s3_is_down_then_reruns_without_a_duplicate(
    real: RealStack,
) -> None:
    _services_up(real)
    versions_before = real.mlflow_query("SELECT count(*) FROM model_versions")
    real.stack.stop("s3")
    try:
        # `airflow tasks test` runs one try of the real ingest task of stroke_etl. In a
        # deployment Airflow retries it: StorageError is no data error, so
        # no_retry_for_data_errors lets the DAG's retries apply (2 more tries, 30 s then 60 s
        # apart) and the run fails only after the third; a failed try looks like this one.
        failed = real.airflow("tasks", "test", "stroke_etl", "ingest")
    finally:
        real.stack.start("s3")
    output = _output(failed, 20_000)
    bucket = real.stack.config.lake_bucket
    assert f"cannot reach the S3 endpoint {real.stack.s3.url} (bucket {bucket!r})" in output
    assert "new_state=up_for_retry" in output  # the try failed; Airflow would retry it
    assert real.mlflow_query("SELECT count(*) FROM model_versions") == versions_before

    rerun = real.airflow("dags", "test", "stroke_etl")
    assert rerun.returncode == 0, _output(rerun)
    raw_versions = {key.split("/")[1] for key in real.objects(bucket, "raw/")}
    assert raw_versions == {real.data_version}


def test_api_keeps_serving_while_mlflow_is_down(
    real: RealStack, tmp_path: Path, api_environment: None
) -> None:
    _services_up(real)
    with TestClient(create_app(real.api_settings(tmp_path / "api"))) as client:
        assert client.get("/health/ready").json()["registry"]["reachable"] is True
        real.stack.stop("mlflow")  # the next test that needs it starts it again
        reload = client.post("/v1/admin/reload").json()
        assert (reload["model_version"], reload["registry_reachable"]) == ("1", False)
        response = client.post("/v1/predict", json=PATIENT)
        assert response.status_code == 200
        assert response.json()["model_version"] == "1"
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready"
        assert body["model"] == {"name": MODEL, "version": "1"}
        assert body["registry"]["reachable"] is False
        assert body["registry"]["error"]


def test_cli_prints_the_env_and_stops_only_the_stack(
    real: RealStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _services_up(real)
    config = real.stack.config
    monkeypatch.setenv("STROKEOPS_STATE_DIR", str(config.state_dir))
    assert config.env_file.stat().st_mode & 0o777 == 0o600
    env = CliRunner().invoke(app, ["stack", "env"])
    assert env.exit_code == 0, env.output
    assert env.output.splitlines() == [
        f"export {name}={shlex.quote(value)}" for name, value in real.stack.env.items()
    ]

    groups = [running.pid for running in real.stack.running.values()]
    down = CliRunner().invoke(app, ["stack", "down"])  # from the state file, as a new shell
    assert down.exit_code == 0, down.output
    assert down.output.strip() == "stopped: mlflow, s3"
    assert [pid for pid in groups if group_members(pid)] == []
    assert not config.env_file.exists()
    assert not config.state_file.exists()
    again = CliRunner().invoke(app, ["stack", "env"])
    assert again.exit_code == 1
    assert "no stack env file" in again.output
