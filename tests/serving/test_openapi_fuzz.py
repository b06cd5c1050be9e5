"""Schemathesis over the API's own OpenAPI schema: no input produces a 5xx."""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from strokeops.config import Settings
from strokeops.serving.app import create_app
from tests.serving.compiled_app import fitted_model, model_store


@pytest.fixture(scope="module")
def started_app(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(state_dir=tmp_path_factory.mktemp("fuzz"), model_poll_seconds=3600)
    _, spec = fitted_model(rows=1500, seed=2)
    app = create_app(settings, model_store=model_store(settings, spec))
    with TestClient(app):  # runs the lifespan: model loaded, log writer started
        yield app


def test_no_input_gives_a_server_error(started_app) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", started_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/predict/batch", "/v1/model"}
    for operation, mode in itertools.product(operations, list(GenerationMode)):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def no_server_error(case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.path, case.body, response.text)

        try:
            no_server_error()
        except Unsatisfiable:
            # an operation without inputs has no invalid variant to generate
            assert mode is GenerationMode.NEGATIVE, operation.path
