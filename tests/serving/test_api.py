"""The API against a real MLflow registry (SQLite) and a real compiled champion."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from strokeops.config import Settings
from strokeops.evaluation import evaluate
from strokeops.features import feature_frame
from strokeops.ingest import ingest
from strokeops.promotion import promote
from strokeops.registry import register
from strokeops.serving.app import create_app
from strokeops.serving.schemas import EXAMPLE
from strokeops.split import split
from strokeops.storage import LocalLake
from strokeops.synthetic import generate_patients, to_csv_bytes
from strokeops.tracking import connect
from strokeops.training import train
from strokeops.validation import validate

PATIENT = EXAMPLE


def _with(settings: Settings, **changes) -> Settings:
    """A validated copy (model_copy would skip validation of the changed fields)."""
    return Settings.model_validate(settings.model_dump() | changes)


def _model_row(patient: dict) -> dict:
    row = {k: v for k, v in patient.items() if k != "residence_type"}
    return row | {"Residence_type": patient["residence_type"], "bmi": patient.get("bmi")}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """A champion (v1) and a registered challenger (v2, not promoted) on generated data."""
    root = tmp_path_factory.mktemp("api")
    data = root / "patients.csv"
    data.write_bytes(to_csv_bytes(generate_patients(2500, seed=4)))
    settings = Settings(
        data=str(data),
        state_dir=root / "state",
        tuning_trials=2,
        cv_repeats=1,
        bootstrap_samples=100,
        model_families=("logistic_regression",),
        model_poll_seconds=0.2,
    )
    lake = LocalLake(settings.lake_path)
    version = ingest(settings.data, lake).data_version
    validate(version, lake, settings)
    split_result = split(version, lake, seed=settings.seed, test_size=settings.test_size)
    versions = []
    for seed in (settings.seed, settings.seed + 1):
        seeded = _with(settings, seed=seed)
        training = train(split_result, lake, seeded)
        evaluate(training.parent_run_id, lake, seeded)
        versions.append(register(training.parent_run_id, lake, seeded).version)
    promote(versions[0], lake, settings)
    return settings, versions


def _pipeline(settings: Settings, version: str):
    import mlflow

    connect(settings)
    return mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version}")


@pytest.fixture
def client(registry):
    settings, _ = registry
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_predict_matches_the_pipeline_exactly(client, registry) -> None:
    settings, (champion, _) = registry
    response = client.post("/v1/predict", json=PATIENT, headers={"X-Request-ID": "req-1"})
    assert response.status_code == 200
    body = response.json()
    expected = _pipeline(settings, champion).predict_proba(
        feature_frame(__import__("pandas").DataFrame([_model_row(PATIENT)]))
    )[0, 1]
    assert body["probability"] == pytest.approx(expected, abs=1e-6)
    threshold = body["decision_threshold"]
    assert set(body) == {
        "request_id",
        "probability",
        "risk_level",
        "decision_threshold",
        "flagged",
        "model_name",
        "model_version",
    }
    assert body["request_id"] == "req-1"
    assert body["model_name"] == "stroke-risk"
    assert body["model_version"] == champion
    assert body["flagged"] is (body["probability"] >= threshold)


def test_batch_scores_each_row_as_the_single_path(client, registry) -> None:
    settings, (champion, _) = registry
    patients = generate_patients(300, seed=99)
    rows = feature_frame(patients)
    payload = [
        {
            **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()},
        }
        for row in rows.to_dict("records")
    ]
    response = client.post("/v1/predict/batch", json={"patients": payload})
    assert response.status_code == 200, response.text
    body = response.json()
    batch = np.array([p["probability"] for p in body["predictions"]])
    expected = _pipeline(settings, champion).predict_proba(rows)[:, 1]
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-6)
    singles = [client.post("/v1/predict", json=p).json()["probability"] for p in payload[:20]]
    np.testing.assert_allclose(batch[:20], singles, rtol=0, atol=1e-12)
    assert body["model_version"] == champion


def test_explain_returns_top_factors(client) -> None:
    body = client.post("/v1/predict?explain=true", json=PATIENT).json()
    factors = body["factors"]
    assert 1 <= len(factors) <= 5
    magnitudes = [abs(f["contribution"]) for f in factors]
    assert magnitudes == sorted(magnitudes, reverse=True)
    for factor in factors:
        assert factor["direction"] == ("raises" if factor["contribution"] > 0 else "lowers")
    assert "age" in {f["feature"] for f in factors}


@pytest.mark.parametrize(("value", "has_factors"), [("1", True), ("yes", True), ("false", False)])
def test_explain_accepts_the_usual_spellings_of_a_flag(client, value, has_factors) -> None:
    response = client.post(f"/v1/predict?explain={value}", json=PATIENT)
    assert response.status_code == 200
    assert ("factors" in response.json()) is has_factors


def test_aliases_integers_booleans_and_missing_bmi_are_accepted(client) -> None:
    patient = {k: v for k, v in PATIENT.items() if k not in ("residence_type", "bmi")}
    patient |= {"Residence_type": "Urban", "hypertension": False, "heart_disease": True}
    response = client.post("/v1/predict", json=patient)
    assert response.status_code == 200, response.text
    assert 0.0 < response.json()["probability"] < 1.0


def test_model_info(client, registry) -> None:
    _, (champion, _) = registry
    body = client.get("/v1/model").json()
    assert body["name"] == "stroke-risk"
    assert body["version"] == champion
    assert body["alias"] == "champion"
    assert body["family"] == "logistic_regression"
    assert len(body["data_version"]) == 64
    assert body["risk_levels"]["elevated"] == body["decision_threshold"]
    assert body["metrics"]["cv_roc_auc_mean"] > 0.6


def test_health_and_metrics(client, registry) -> None:
    _, (champion, _) = registry
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["model"] == {"name": "stroke-risk", "version": champion}
    client.post("/v1/predict", json=PATIENT)
    text = client.get("/metrics").text
    assert f'strokeops_serving_model_version{{model_name="stroke-risk"}} {float(champion)}' in text
    assert 'strokeops_http_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert "strokeops_prediction_log_backlog" in text
    assert "strokeops_predictions_total{" in text


def test_not_ready_without_a_champion(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "empty", model_poll_seconds=60)
    with TestClient(create_app(settings)) as empty:
        ready = empty.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready"
        assert empty.post("/v1/predict", json=PATIENT).status_code == 503


def test_api_keys(registry, caplog: pytest.LogCaptureFixture) -> None:
    settings, _ = registry
    keyed = _with(settings, api_keys="first-key,second-key")
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(keyed)) as api:
        denied = api.post("/v1/predict", json=PATIENT)
        assert denied.status_code == 401
        assert denied.json() == {"detail": "missing or invalid API key (header X-API-Key)"}
        assert (
            api.post("/v1/predict", json=PATIENT, headers={"X-API-Key": "nope"}).status_code == 401
        )
        ok = api.post("/v1/predict", json=PATIENT, headers={"X-API-Key": "second-key"})
        assert ok.status_code == 200
        # exactly one key: a right key beside a wrong one is refused in either order
        for pair in (["second-key", "nope"], ["nope", "second-key"]):
            two = api.post("/v1/predict", json=PATIENT, headers=[("X-API-Key", k) for k in pair])
            assert two.status_code == 401, pair
        assert api.get("/v1/model").status_code == 401
        assert api.post("/v1/admin/reload").status_code == 401
        for open_path in ("/health/live", "/health/ready", "/metrics", "/docs", "/"):
            assert api.get(open_path).status_code == 200, open_path
        # the key is checked before the body: no key, a broken body → still 401, not 422
        garbage = api.post("/v1/predict", content=b"{not json", headers={"X-API-Key": "nope"})
        assert garbage.status_code == 401
        assert garbage.headers["www-authenticate"] == "APIKey"
        # rejected requests are counted under their route, not as unmatched
        metrics = api.get("/metrics").text
        assert 'method="POST",route="/v1/predict",status="401"} 5.0' in metrics
        assert 'route="/v1/admin/reload",status="401"} 1.0' in metrics
    assert "first-key" not in caplog.text
    assert "second-key" not in caplog.text


def test_openapi_declares_the_api_key_on_v1_only(client) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of STROKEOPS_API_KEYS (not required when none is configured).",
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            secured = operation.get("security") == [{"APIKeyHeader": []}]
            assert secured is path.startswith("/v1/"), (method, path)
            assert ("401" in operation["responses"]) is secured, (method, path)
    predict = schema["paths"]["/v1/predict"]["post"]
    assert [p["name"] for p in predict["parameters"]] == ["explain"]
    # HEAD routes are not documented twice, and every operation id is unique
    operation_ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert "head" not in schema["paths"]["/health/live"]


def test_request_ids_are_unique_when_the_client_sends_none(client) -> None:
    ids = {client.post("/v1/predict", json=PATIENT).json()["request_id"] for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    too_long = client.post("/v1/predict", json=PATIENT, headers={"X-Request-ID": "x" * 65})
    assert too_long.json()["request_id"] != "x" * 65


def test_open_api_logs_that_it_is_open(registry, caplog: pytest.LogCaptureFixture) -> None:
    settings, _ = registry
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(settings)):
        pass
    assert "no API keys configured" in caplog.text


def test_prediction_rows_are_logged_in_sqlite(registry, tmp_path: Path) -> None:
    import sqlalchemy as sa

    settings, (champion, _) = registry
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with TestClient(create_app(_with(settings, prediction_log_url=url))) as api:
        api.post("/v1/predict", json=PATIENT, headers={"X-Request-ID": "logged-1"})
        api.post("/v1/predict/batch", json={"patients": [PATIENT, PATIENT | {"bmi": None}]})
    with sa.create_engine(url).connect() as connection:
        rows = (
            connection.execute(sa.text("select * from prediction_log order by id")).mappings().all()
        )
    assert len(rows) == 3
    assert rows[0]["request_id"] == "logged-1"
    assert rows[0]["model_version"] == champion
    assert rows[0]["age"] == 67.0
    assert rows[0]["residence_type"] == "Urban"
    assert rows[2]["bmi"] is None
    assert [r["row_index"] for r in rows] == [0, 0, 1]


class _Server:
    """A real uvicorn server in a thread, for tests that need concurrency."""

    def __init__(self, app) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_hot_swap_under_load_has_no_failed_request(registry) -> None:
    settings, (champion, challenger) = registry
    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    with _Server(create_app(settings)) as base_url:
        versions: Counter[str] = Counter()
        failures: list[str] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=base_url, timeout=10) as http:
                while not stop.is_set():
                    response = http.post("/v1/predict", json=PATIENT)
                    if response.status_code == 200:
                        versions[response.json()["model_version"]] += 1
                    else:
                        failures.append(f"{response.status_code} {response.text}")

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(0.5)
        client.set_registered_model_alias(settings.model_name, "champion", challenger)
        deadline = time.monotonic() + 10
        while versions[challenger] < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for worker in workers:
            worker.join()
    client.set_registered_model_alias(settings.model_name, "champion", champion)
    assert failures == []
    assert versions[champion] > 0
    assert versions[challenger] >= 50


def test_registry_down_keeps_serving(
    registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, (champion, _) = registry
    app = create_app(settings)
    caplog.set_level(logging.INFO)
    with TestClient(app) as api:
        store = app.state.model_store
        store.settings = _with(settings, tracking_uri="http://alice:s3cret@127.0.0.1:9/")
        reload = api.post("/v1/admin/reload").json()
        assert reload["swapped"] is False
        assert reload["registry_reachable"] is False
        assert reload["model_version"] == champion
        ready = api.get("/health/ready").json()
        assert ready["registry"]["reachable"] is False
        assert "http://***@127.0.0.1:9/" in ready["registry"]["error"]
        assert api.post("/v1/predict", json=PATIENT).json()["model_version"] == champion
        assert "strokeops_registry_reachable 0.0" in api.get("/metrics").text
    # the registry's password is in neither the open health details nor the log
    assert "s3cret" not in caplog.text
    assert "model refresh failed" in caplog.text
