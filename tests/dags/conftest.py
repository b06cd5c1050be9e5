"""Airflow for the DAG tests: its home, configuration and SQLite metadata DB in a temp folder.

Airflow reads its configuration when it is first imported, so the environment is set in
``pytest_configure``, which runs before the test modules of this folder are imported. Nothing
from the developer's Airflow set-up (``AIRFLOW_*`` variables, ``~/airflow``) is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
_HOME = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    if "airflow" in sys.modules:
        raise pytest.UsageError("airflow was imported before tests/dags could isolate its home")
    home = Path(tempfile.mkdtemp(prefix="strokeops-airflow-"))
    config.stash[_HOME] = home
    for name in [n for n in os.environ if n.startswith("AIRFLOW")]:
        del os.environ[name]
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW_CONFIG=str(home / "airflow.cfg"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return DAGS_FOLDER


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The metadata DB (SQLite in the temp Airflow home), migrated once per session."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
