"""Helpers for the Airflow tasks in ``dags/`` (imported inside tasks, never at parse time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from strokeops.errors import DataValidationError, NotFoundError


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
