"""Shared fixtures: isolated settings and lake per test, the real data file, generated data."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from strokeops.config import Settings
from strokeops.storage import LocalLake
from strokeops.synthetic import generate_patients, to_csv_bytes

REAL_DATA_SHA256 = "ad3c2a87676572bd732d30d9a5949f0a6f4422da452a9b5635323abab7ea368f"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's STROKEOPS_* settings or writes outside its tmp folder."""
    for name in list(os.environ):
        if name.startswith("STROKEOPS_") and name != "STROKEOPS_DATA":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Fast settings for unit tests: few trials, small CV, all state under tmp_path."""
    return Settings(
        data=str(tmp_path / "patients.csv"),
        state_dir=tmp_path / "state",
        tuning_trials=2,
        cv_repeats=1,
        bootstrap_samples=200,
        min_rows=5,  # unit tests use small frames; the real limits are tested in test_cli
        min_class_rows=2,
    )


@pytest.fixture
def lake(settings: Settings) -> LocalLake:
    return LocalLake(settings.lake_path)


@pytest.fixture
def patients() -> pd.DataFrame:
    return generate_patients(2000, seed=7)


@pytest.fixture
def patients_csv(tmp_path: Path, patients: pd.DataFrame) -> Path:
    path = tmp_path / "patients.csv"
    path.write_bytes(to_csv_bytes(patients))
    return path


@pytest.fixture(scope="session")
def real_data_path(pytestconfig: pytest.Config) -> Path:
    """The real data set, named by STROKEOPS_DATA; CI must have it, elsewhere it may be absent."""
    path = Path(os.environ.get("STROKEOPS_DATA", "data/healthcare-dataset-stroke-data.csv"))
    if not path.is_absolute():  # relative to the checkout, as in the Makefile
        path = pytestconfig.rootpath / path
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the real data set at STROKEOPS_DATA ({path})")
        pytest.skip(f"real data set not found at {path}; set STROKEOPS_DATA")
    return path.resolve()
