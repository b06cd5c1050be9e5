"""Settings: safe local defaults, STROKEOPS_* overrides, rejected values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from strokeops.config import MODEL_FAMILIES, Settings


@pytest.fixture
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest keeps STROKEOPS_DATA for the real-data tests; the default tests need it unset."""
    monkeypatch.delenv("STROKEOPS_DATA", raising=False)


@pytest.mark.usefixtures("no_data_env")
def test_defaults_keep_all_state_under_dot_strokeops(tmp_path: Path) -> None:
    settings = Settings()
    state = tmp_path.resolve() / ".strokeops"  # the autouse fixture chdirs into tmp_path

    assert settings.data == "data/healthcare-dataset-stroke-data.csv"
    assert settings.state_dir == Path(".strokeops")
    assert settings.lake_path == state / "lake"
    assert settings.mlflow_uri == f"sqlite:///{state / 'mlflow.db'}"
    assert settings.artifact_location == (state / "mlartifacts").as_uri()
    assert settings.summary_path == state / "last-run.json"
    assert settings.seed == 42
    assert settings.test_size == 0.2
    assert settings.target_recall == 0.8
    assert settings.model_families == MODEL_FAMILIES
    assert (settings.cv_folds, settings.cv_repeats, settings.tuning_trials) == (5, 3, 8)


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("STROKEOPS_SEED", "7", "seed", 7),
        ("STROKEOPS_TEST_SIZE", "0.3", "test_size", 0.3),
        ("STROKEOPS_DATA", "https://example.org/s.csv", "data", "https://example.org/s.csv"),
        ("STROKEOPS_TUNING_TRIALS", "3", "tuning_trials", 3),
        ("STROKEOPS_CV_FOLDS", "4", "cv_folds", 4),
        ("STROKEOPS_TARGET_RECALL", "0.9", "target_recall", 0.9),
        ("STROKEOPS_GATE_MAX_CV_BRIER", "0.04", "gate_max_cv_brier", 0.04),
        ("STROKEOPS_DRIFT_MAX_PREVALENCE_SHIFT", "0.05", "drift_max_prevalence_shift", 0.05),
        ("STROKEOPS_MODEL_FAMILIES", "random_forest", "model_families", ("random_forest",)),
        (
            "STROKEOPS_MODEL_FAMILIES",
            "logistic_regression, random_forest",
            "model_families",
            ("logistic_regression", "random_forest"),
        ),
        ("STROKEOPS_BOOTSTRAP_SAMPLES", "250", "bootstrap_samples", 250),
    ],
)
def test_environment_overrides(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: Any
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(Settings(), field) == expected


def test_state_dir_from_the_environment_moves_every_derived_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STROKEOPS_STATE_DIR", str(tmp_path / "elsewhere"))
    settings = Settings()
    state = (tmp_path / "elsewhere").resolve()
    assert settings.lake_path == state / "lake"
    assert settings.mlflow_uri == f"sqlite:///{state / 'mlflow.db'}"
    assert settings.summary_path == state / "last-run.json"


def test_explicit_lake_root_and_tracking_uri_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STROKEOPS_LAKE_ROOT", str(tmp_path / "lake-here"))
    monkeypatch.setenv("STROKEOPS_TRACKING_URI", "http://mlflow.internal:5000")
    settings = Settings()
    assert settings.lake_path == (tmp_path / "lake-here").resolve()
    assert settings.mlflow_uri == "http://mlflow.internal:5000"


def test_keyword_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STROKEOPS_SEED", "7")
    assert Settings(seed=3).seed == 3


def test_unknown_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STROKEOPS_NOT_A_SETTING", "x")
    assert Settings().seed == 42


FAMILIES_MESSAGE = (
    "Value error, model_families must be a non-empty subset of "
    "('logistic_regression', 'random_forest', 'hist_gradient_boosting')"
)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"test_size": 0.9}, "Input should be less than 0.5"),
        ({"test_size": 0.05}, "Input should be greater than 0.05"),
        ({"model_families": ("xgboost",)}, FAMILIES_MESSAGE),
        ({"model_families": ("random_forest", "svm")}, FAMILIES_MESSAGE),
        ({"model_families": ()}, FAMILIES_MESSAGE),
        (
            {"seed": "forty-two"},
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        ({"cv_folds": 1}, "Input should be greater than or equal to 2"),
        ({"target_recall": 1.0}, "Input should be less than 1"),
        ({"target_recall": 0.0}, "Input should be greater than 0"),
        ({"bootstrap_samples": 99}, "Input should be greater than or equal to 100"),
        ({"drift_max_row_ratio": 1.0}, "Input should be greater than 1"),
        ({"gate_roc_auc_tolerance": -0.01}, "Input should be greater than or equal to 0"),
        ({"log_flush_seconds": float("inf")}, "Input should be less than or equal to 86400"),
        ({"model_poll_seconds": 1e20}, "Input should be less than or equal to 86400"),
        ({"model_poll_seconds": 1e-9}, "Input should be greater than or equal to 0.1"),
        ({"log_flush_seconds": 0.001}, "Input should be greater than or equal to 0.01"),
        ({"s3_read_timeout": float("nan")}, "Input should be less than or equal to 86400"),
        (
            {"prediction_log_url": "notaurl"},
            "Value error, not a SQLAlchemy database URL (e.g. postgresql+psycopg2://user@host/db)",
        ),
        (
            {"api_keys": " , ,"},
            "Value error, api_keys lists no key, only commas; unset it to leave the API open",
        ),
    ],
)
def test_invalid_values_are_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**overrides)
    (error,) = caught.value.errors()
    assert error["loc"] == (next(iter(overrides)),)
    assert error["msg"] == message


def test_invalid_value_from_the_environment_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STROKEOPS_TEST_SIZE", "0.9")
    with pytest.raises(ValidationError, match=r"test_size\n  Input should be less than 0\.5"):
        Settings()


@pytest.mark.parametrize(("value", "keys"), [("", ()), ("  ", ()), (" a, b ,", ("a", "b"))])
def test_api_keys_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, keys: tuple[str, ...]
) -> None:
    monkeypatch.setenv("STROKEOPS_API_KEYS", value)
    assert Settings().api_key_list == keys


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="Instance is frozen"):
        settings.seed = 1  # type: ignore[misc]


@pytest.mark.usefixtures("no_data_env")
def test_the_lake_stays_local_unless_an_s3_uri_is_set() -> None:
    settings = Settings()
    assert settings.lake_uri is None
    assert settings.s3_endpoint_url is None
    assert settings.s3_region == "us-east-1"
    assert settings.s3_access_key_id is None
    assert settings.s3_secret_access_key is None


def test_s3_lake_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STROKEOPS_LAKE_URI", "s3://stroke-lake/prod")
    monkeypatch.setenv("STROKEOPS_S3_ENDPOINT_URL", "http://127.0.0.1:8333/")
    monkeypatch.setenv("STROKEOPS_S3_REGION", "eu-central-1")
    monkeypatch.setenv("STROKEOPS_S3_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("STROKEOPS_S3_SECRET_ACCESS_KEY", "s3cr3t")
    settings = Settings()
    assert settings.lake_uri == "s3://stroke-lake/prod"
    assert settings.s3_endpoint_url == "http://127.0.0.1:8333"
    assert settings.s3_region == "eu-central-1"
    assert settings.s3_secret_access_key.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"lake_uri": "file:///tmp/lake"}, "lake_uri", "is not an s3:// URI"),
        ({"lake_uri": "s3:///prefix"}, "lake_uri", "does not name a valid S3 bucket"),
        ({"lake_uri": "s3://Bad_Bucket/x"}, "lake_uri", "does not name a valid S3 bucket"),
        (
            {"lake_root": "/tmp/lake", "lake_uri": "s3://bucket/x"},
            "lake_uri",
            "set either lake_root (a local lake) or lake_uri (S3), not both",
        ),
        ({"s3_endpoint_url": "127.0.0.1:8333"}, "s3_endpoint_url", "is not an http(s) URL"),
        (
            {"s3_access_key_id": "AKID"},
            "s3_secret_access_key",
            "set s3_access_key_id and s3_secret_access_key together",
        ),
        (
            {"s3_secret_access_key": "secret"},
            "s3_secret_access_key",
            "set s3_access_key_id and s3_secret_access_key together",
        ),
    ],
)
def test_invalid_s3_settings_are_rejected(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**overrides)
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]
