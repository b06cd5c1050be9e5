"""Helpers for the Airflow DAGs in ``dags/``: light to import (the DAG files import it at parse
time), and Airflow itself is imported only inside the helpers that need it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from strokeops.errors import DataValidationError, NotFoundError

# every task: two retries with back-off (30 s, then 60 s) for what a retry can fix
TASK_DEFAULTS = {
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@contextmanager
def no_retry_for_data_errors() -> Iterator[None]:
    """Bad data or a missing input is not fixed by retrying: fail the task at once.

    Anything else (S3 or the tracking server down, a network error) is left to the task's
    retries.
    """
    try:
        yield
    except (DataValidationError, NotFoundError) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
