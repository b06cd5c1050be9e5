"""One typed settings object, read from ``STROKEOPS_*`` environment variables.

Every default is safe for local use: with nothing set, state lives under ``.strokeops/`` (a
SQLite MLflow store, local artifacts and a folder data lake). The lake moves to S3 only when
``STROKEOPS_LAKE_URI=s3://bucket/prefix`` is set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_PATH = Path("data/healthcare-dataset-stroke-data.csv")
MODEL_FAMILIES = ("logistic_regression", "random_forest", "hist_gradient_boosting")
DAY_SECONDS = 86_400  # the longest wait or interval a setting may ask for
# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens, a letter or digit at each end
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``; ValueError if malformed."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        raise ValueError(f"{uri!r} is not an s3:// URI")
    if not BUCKET_NAME.fullmatch(parts.netloc):
        raise ValueError(f"{uri!r} does not name a valid S3 bucket (s3://bucket/prefix)")
    if parts.query or parts.fragment:
        raise ValueError(f"{uri!r} has a query or fragment; give s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


class Settings(BaseSettings):
    """Configuration for every stage and driver (CLI, Airflow, tests)."""

    model_config = SettingsConfigDict(env_prefix="STROKEOPS_", extra="ignore", frozen=True)

    data: str = Field(
        default=str(DEFAULT_DATA_PATH),
        description="Raw data source: a local path, an http(s) URL or s3://bucket/key.",
    )
    state_dir: Path = Field(
        default=Path(".strokeops"),
        description="Folder for all local state: lake, MLflow store, run summaries.",
    )
    lake_root: Path | None = Field(
        default=None, description="Local lake folder (default: lake/ in the state dir)."
    )
    lake_uri: str | None = Field(
        default=None,
        description="s3://bucket/prefix puts the lake on S3; unset keeps it in a local folder.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (e.g. http://127.0.0.1:8333); unset: boto3's "
        "default (AWS_ENDPOINT_URL_S3, else AWS).",
    )
    s3_region: str = Field(default="us-east-1", min_length=1, description="S3 region.")
    s3_access_key_id: SecretStr | None = Field(
        default=None, description="S3 access key; unset: boto3's chain (AWS_ACCESS_KEY_ID, ...)."
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        validate_default=True,
        description="S3 secret key; set together with s3_access_key_id.",
    )
    s3_connect_timeout: float = Field(
        default=3.0,
        gt=0,
        le=DAY_SECONDS,
        description="Seconds to wait for a connection to the S3 endpoint.",
    )
    s3_read_timeout: float = Field(
        default=20.0,
        gt=0,
        le=DAY_SECONDS,
        description="Seconds to wait for S3 to answer on a connection.",
    )
    s3_max_attempts: int = Field(
        default=2, ge=1, le=10, description="Tries of one S3 request (the first one included)."
    )
    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI.")
    experiment_name: str = "stroke-risk"
    model_name: str = "stroke-risk"

    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    test_size: float = Field(default=0.2, gt=0.05, lt=0.5)
    cv_folds: int = Field(default=5, ge=2)
    cv_repeats: int = Field(default=3, ge=1, description="Repeats of the evaluation CV.")
    tuning_cv_folds: int = Field(default=3, ge=2, description="Folds inside Optuna trials.")
    tuning_cv_repeats: int = Field(default=1, ge=1, description="Repeats inside Optuna trials.")
    tuning_trials: int = Field(default=8, ge=1, description="Optuna trials per model family.")
    model_families: Annotated[tuple[str, ...], NoDecode] = Field(
        default=MODEL_FAMILIES, description="Comma-separated model families to train."
    )
    target_recall: float = Field(
        default=0.80, gt=0.0, lt=1.0, description="Clinical aim the decision threshold meets."
    )
    bootstrap_samples: int = Field(default=1000, ge=100)
    min_rows: int = Field(default=500, ge=1, description="Fewer validated rows stop the run.")
    min_class_rows: int = Field(
        default=25, ge=1, description="Fewer rows of either target class stop the run."
    )
    max_missing_rate: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Largest share of missing bmi accepted."
    )

    gate_min_cv_roc_auc: float = 0.80
    gate_min_holdout_roc_auc: float = 0.75
    gate_max_cv_brier: float = 0.05
    gate_roc_auc_tolerance: float = Field(
        default=0.01, ge=0.0, description="How much worse than the champion a challenger may be."
    )
    gate_brier_tolerance: float = Field(default=0.005, ge=0.0)
    gate_max_calibration_gap: float = Field(
        default=0.02, ge=0.0, description="|mean predicted risk - observed rate| on the holdout."
    )
    drift_max_row_ratio: float = Field(default=2.0, gt=1.0)
    drift_max_prevalence_shift: float = 0.02
    drift_max_missing_shift: float = 0.05
    drift_max_category_shift: float = 0.10
    drift_max_quantile_shift: float = Field(
        default=0.25, description="Largest quantile move, in units of the reference IQR."
    )

    # serving
    api_keys: SecretStr | None = Field(
        default=None, description="Comma-separated API keys; unset leaves the API open."
    )
    prediction_log_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the prediction log (default: SQLite)."
    )
    model_alias: str = "champion"
    # lower bounds: a registry check or a log flush every microsecond would take a core
    model_poll_seconds: float = Field(default=30.0, ge=0.1, le=DAY_SECONDS)
    batch_limit: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body to /v1 (a 10,000-patient batch is about 2.5 MB).",
    )
    log_buffer_rows: int = Field(default=200_000, ge=1)
    log_batch_rows: int = Field(default=2_000, ge=1)
    log_flush_seconds: float = Field(default=0.5, ge=0.01, le=DAY_SECONDS)
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("model_families", mode="before")
    @classmethod
    def _split_families(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("model_families")
    @classmethod
    def _known_families(cls, families: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(families) - set(MODEL_FAMILIES))
        if unknown or not families:
            raise ValueError(f"model_families must be a non-empty subset of {MODEL_FAMILIES}")
        return families

    @field_validator("api_keys")
    @classmethod
    def _some_key(cls, keys: SecretStr | None) -> SecretStr | None:
        """Empty means unset; commas and spaces alone are a mistake that would open the API."""
        if keys is None or not keys.get_secret_value().strip():
            return None
        if not any(key.strip() for key in keys.get_secret_value().split(",")):
            raise ValueError("api_keys lists no key, only commas; unset it to leave the API open")
        return keys

    @field_validator("prediction_log_url")
    @classmethod
    def _database_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(url.strip())
        except ArgumentError:
            raise ValueError(
                "not a SQLAlchemy database URL (e.g. postgresql+psycopg2://user@host/db)"
            ) from None
        return url.strip()

    @field_validator("lake_uri")
    @classmethod
    def _s3_lake_uri(cls, uri: str | None, info: ValidationInfo) -> str | None:
        if uri is None or not uri.strip():
            return None
        parse_s3_uri(uri.strip())  # only S3 here; a local lake is STROKEOPS_LAKE_ROOT
        if info.data.get("lake_root") is not None:
            raise ValueError("set either lake_root (a local lake) or lake_uri (S3), not both")
        return uri.strip()

    @field_validator("s3_endpoint_url")
    @classmethod
    def _http_endpoint(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url.strip().rstrip("/")

    @field_validator("s3_secret_access_key")
    @classmethod
    def _both_keys(cls, secret: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if (info.data.get("s3_access_key_id") is None) != (secret is None):
            raise ValueError("set s3_access_key_id and s3_secret_access_key together")
        return secret

    @property
    def lake_path(self) -> Path:
        return (self.lake_root or self.state_dir / "lake").resolve()

    @property
    def local_registry(self) -> Path | None:
        """The SQLite tracking store and registry, unless a tracking server is configured."""
        return None if self.tracking_uri else (self.state_dir / "mlflow.db").resolve()

    @property
    def mlflow_uri(self) -> str:
        if self.local_registry is None:
            return str(self.tracking_uri)
        return f"sqlite:///{self.local_registry}"

    @property
    def artifact_location(self) -> str:
        """Where a new experiment keeps artifacts when the tracking store is local."""
        return (self.state_dir / "mlartifacts").resolve().as_uri()

    @property
    def api_key_list(self) -> tuple[str, ...]:
        if self.api_keys is None:
            return ()
        return tuple(k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip())

    @property
    def prediction_log_uri(self) -> str:
        if self.prediction_log_url:
            return self.prediction_log_url
        return f"sqlite:///{(self.state_dir / 'predictions.db').resolve()}"

    @property
    def summary_path(self) -> Path:
        return (self.state_dir / "last-run.json").resolve()
