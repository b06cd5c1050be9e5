"""The prediction log writer (``PredictionLog``) against SQLite and a throwaway PostgreSQL.

No HTTP: rows are submitted directly, as the predict routes do. Tests marked ``postgres``
start, stop and restart their own PostgreSQL server (see ``conftest.py``), never the machine's.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from strokeops.serving.prediction_log import PredictionLog, prediction_log

from .conftest import PostgresServer, _free_port

MODEL_NAME = "stroke-risk"
# a client's X-Request-ID may hold what CSV (PostgreSQL's COPY path) must quote
AWKWARD_ID = 'req-"b", \\N;'
CREATED = datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=UTC)
FLUSH_SECONDS = 0.05
GENDERS = ("Male", "Female", "Other")
WORK_TYPES = ("Private", "Self-employed", "Govt_job", "children", "Never_worked")
SMOKING = ("formerly smoked", "never smoked", "smokes", "Unknown")
FEATURE_COLUMNS = (
    "gender",
    "age",
    "hypertension",
    "heart_disease",
    "ever_married",
    "work_type",
    "residence_type",
    "avg_glucose_level",
    "bmi",
    "smoking_status",
)


def _items(count: int, *, start: int = 0, bmi_missing_every: int = 3) -> list[tuple]:
    """(validated patient, probability, risk level) items, as the routes submit them."""
    items = []
    for i in range(start, start + count):
        row = {
            "gender": GENDERS[i % 3],
            "age": 18.0 + (i * 7) % 70 + 0.5,
            "hypertension": i % 2,
            "heart_disease": (i // 2) % 2,
            "ever_married": "Yes" if i % 4 else "No",
            "work_type": WORK_TYPES[i % 5],
            "residence_type": "Urban" if i % 2 else "Rural",
            "avg_glucose_level": 70.25 + i,
            "bmi": None if i % bmi_missing_every == 0 else 20.0 + (i % 17) * 0.5,
            "smoking_status": SMOKING[i % 4],
        }
        probability = round(0.001 + (i % 97) / 100.0, 6)
        items.append((row, probability, "high" if probability >= 0.5 else "low"))
    return items


def _expected(request_id: str, version: str, items: list[tuple]) -> list[dict[str, Any]]:
    expected = []
    for index, (row, probability, level) in enumerate(items):
        features = {k: row[k] for k in FEATURE_COLUMNS}
        expected.append(
            {
                "request_id": request_id,
                "row_index": index,
                "model_name": MODEL_NAME,
                "model_version": version,
                "probability": probability,
                "risk_level": level,
                **features,
            }
        )
    return expected


def _writer(url: str, *, buffer_rows: int = 100_000, batch_rows: int = 500) -> PredictionLog:
    return PredictionLog(
        url, buffer_rows=buffer_rows, batch_rows=batch_rows, flush_seconds=FLUSH_SECONDS
    )


def _read_rows(url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(prediction_log).order_by(
                prediction_log.c.request_id, prediction_log.c.row_index
            )
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


def _counts(url: str) -> tuple[int, int]:
    """(rows, distinct (request_id, row_index) pairs) in the table."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            total = connection.execute(sa.select(sa.func.count()).select_from(prediction_log))
            pairs = sa.select(prediction_log.c.request_id, prediction_log.c.row_index).distinct()
            distinct = connection.execute(sa.select(sa.func.count()).select_from(pairs.subquery()))
            return total.scalar_one(), distinct.scalar_one()
    finally:
        engine.dispose()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took, or fail naming ``what``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def _assert_rows_exact(url: str, expected: list[dict[str, Any]]) -> None:
    rows = _read_rows(url)
    assert len(rows) == len(expected)
    for row, want in zip(
        rows, sorted(expected, key=lambda r: (r["request_id"], r["row_index"])), strict=True
    ):
        assert {k: row[k] for k in want} == want
        created = row["created_at"]
        # SQLite keeps no time zone: it stores the naive UTC wall time
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        assert created == CREATED
        assert isinstance(row["id"], int)
    assert any(row["bmi"] is None for row in rows)
    assert any(row["bmi"] is not None for row in rows)


def test_rows_land_in_sqlite_and_the_table_is_created_idempotently(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    first, second = _items(4), _items(3, start=10)

    writer = _writer(url)
    writer.start()
    writer.submit_predictions("req-a", CREATED, MODEL_NAME, "3", first)
    writer.stop()  # shutdown flushes what is pending
    assert (writer.written, writer.backlog, writer.dropped) == (4, 0, 0)
    assert writer.database_up
    assert writer.last_error is None

    # a second writer on the same database: the DDL step finds the table and keeps its rows
    again = _writer(url)
    again.start()
    again.submit_predictions(AWKWARD_ID, CREATED, MODEL_NAME, "4", second)
    _wait_for(lambda: again.backlog == 0, 5, "the second writer to drain")
    again.stop()
    assert (again.written, again.dropped) == (3, 0)

    _assert_rows_exact(url, _expected("req-a", "3", first) + _expected(AWKWARD_ID, "4", second))
    assert _counts(url) == (7, 7)
    # the writer put the database in WAL mode (commits append to a log; readers never block)
    with sqlite3.connect(tmp_path / "predictions.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.postgres
def test_rows_land_in_postgres(postgres_url: str) -> None:
    first, second = _items(5), _items(2, start=20)
    writer = _writer(postgres_url)
    writer.start()
    writer.submit_predictions("req-a", CREATED, MODEL_NAME, "7", first)
    writer.submit_predictions(AWKWARD_ID, CREATED, MODEL_NAME, "7", second)
    _wait_for(lambda: writer.backlog == 0, 10, "the rows to be written")
    writer.stop()
    assert (writer.written, writer.dropped) == (7, 0)
    assert writer.database_up

    again = _writer(postgres_url)  # the table exists: starting again works
    again.start()
    again.submit_predictions("req-c", CREATED, MODEL_NAME, "8", first)
    again.stop()
    assert (again.written, again.dropped) == (5, 0)

    _assert_rows_exact(
        postgres_url,
        _expected("req-a", "7", first)
        + _expected(AWKWARD_ID, "7", second)
        + _expected("req-c", "8", first),
    )


# The bar is a 30 s database outage; the test uses a 5 s one to keep the suite fast.
# The behaviour does not depend on the length: rows wait in the buffer and the writer retries
# with a backoff capped at 5 s.
OUTAGE_SECONDS = 5.0
ROWS_PER_SUBMISSION = 20
SUBMIT_INTERVAL = 0.06  # 50 submissions of 20 rows take about 3 s


@pytest.mark.postgres
def test_database_down_then_back_loses_and_duplicates_nothing(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    writer = _writer(postgres_url, batch_rows=200)
    writer.start()
    items = _items(ROWS_PER_SUBMISSION)
    submitted = 0
    stop_submitting = threading.Event()

    def submit_continuously() -> None:
        nonlocal submitted
        number = 0
        while not stop_submitting.is_set():
            writer.submit_predictions(
                f"req-{number:05d}", CREATED + timedelta(seconds=number), MODEL_NAME, "1", items
            )
            submitted += ROWS_PER_SUBMISSION
            number += 1
            time.sleep(SUBMIT_INTERVAL)

    submitter = threading.Thread(target=submit_continuously, name="submitter", daemon=True)
    submitter.start()
    try:
        _wait_for(lambda: writer.written >= 200 and writer.database_up, 10, "first writes")

        postgres_server.stop("fast")
        outage_start = time.monotonic()
        _wait_for(lambda: not writer.database_up, OUTAGE_SECONDS, "database_up to be False")
        assert writer.last_error is not None
        _wait_for(lambda: writer.backlog > 0, OUTAGE_SECONDS, "a backlog during the outage")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_start)))
        backlog_at_end_of_outage = writer.backlog
        assert not writer.database_up
        # submissions went on during the outage and were buffered (about 80 per second)
        assert backlog_at_end_of_outage >= 0.5 * OUTAGE_SECONDS / SUBMIT_INTERVAL * 20

        postgres_server.start()
        time.sleep(1.0)  # keep submitting after the database is back
    finally:
        stop_submitting.set()
        submitter.join(5)
    assert submitted >= 50 * ROWS_PER_SUBMISSION

    # the retry backoff is capped at 5 s, so the writer is back well within 15 s
    _wait_for(lambda: writer.backlog == 0 and writer.database_up, 15, "the backlog to drain")
    writer.stop()

    assert writer.dropped == 0
    assert writer.written == submitted
    assert _counts(postgres_url) == (submitted, submitted)


def test_buffer_is_bounded_and_submit_never_blocks(caplog: pytest.LogCaptureFixture) -> None:
    closed_port = _free_port()  # nothing listens there: every connection is refused
    writer = _writer(
        f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port}/postgres", buffer_rows=100
    )
    writer.start()
    try:
        started = time.perf_counter()
        writer.submit_predictions("req-a", CREATED, MODEL_NAME, "1", _items(150))
        assert time.perf_counter() - started < 0.1
        assert (writer.backlog, writer.dropped) == (100, 50)

        _wait_for(lambda: writer.last_error is not None, 5, "a failed write attempt")
        assert not writer.database_up
        assert (writer.backlog, writer.dropped, writer.written) == (100, 50, 0)
        _wait_for(lambda: "50 rows dropped so far" in caplog.text, 5, "a warning of the drops")
        assert "prediction log buffer full (100 rows)" in caplog.text

        # a full buffer still never blocks: each further row is dropped and counted
        started = time.perf_counter()
        for number in range(20):
            writer.submit_predictions(f"req-{number}", CREATED, MODEL_NAME, "1", _items(5))
        assert time.perf_counter() - started < 0.1
        assert (writer.backlog, writer.dropped, writer.written) == (100, 150, 0)
    finally:
        writer.stop()


@pytest.mark.postgres
def test_database_down_at_start_rows_arrive_when_it_comes_up(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    postgres_server.stop("fast")
    writer = _writer(postgres_url)
    writer.start()
    batches = {f"req-{n}": _items(4 + n, start=n * 10) for n in range(3)}
    for request_id, items in batches.items():
        writer.submit_predictions(request_id, CREATED, MODEL_NAME, "2", items)
    _wait_for(lambda: writer.last_error is not None, 5, "a failed write attempt")
    assert not writer.database_up
    assert writer.backlog == 15

    postgres_server.start()
    # the first good connection creates the table (the fresh database has none), then writes
    _wait_for(lambda: writer.backlog == 0 and writer.database_up, 15, "the rows to arrive")
    writer.stop()
    assert (writer.written, writer.dropped) == (15, 0)
    _assert_rows_exact(
        postgres_url,
        [row for request_id, items in batches.items() for row in _expected(request_id, "2", items)],
    )


class _SlowRow(dict):
    """A model row whose reads block until ``release`` is set: it holds the writer thread in the
    middle of staging a chunk, widening a window that is otherwise microseconds long."""

    def __init__(self, row: dict[str, Any], release: threading.Event) -> None:
        super().__init__(row)
        self.reached = threading.Event()
        self.release = release

    def __getitem__(self, key: str) -> Any:
        self.reached.set()
        self.release.wait(10)
        return super().__getitem__(key)


def test_no_rows_are_dropped_while_a_chunk_is_being_staged(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    writer = _writer(url, buffer_rows=100)
    release = threading.Event()
    first = _items(60)
    slow = _SlowRow(first[50][0], release)
    first[50] = (slow, *first[50][1:])
    writer.start()
    try:
        writer.submit_predictions("req-a", CREATED, MODEL_NAME, "1", first)
        # the writer has staged 50 of the 60 rows and waits on row 50: 60 rows are held, but
        # backlog reads 110 (60 queued + 50 staged)
        assert slow.reached.wait(5), "the writer did not start staging"
        writer.submit_predictions("req-b", CREATED, MODEL_NAME, "1", _items(10))  # 70 <= 100
    finally:
        release.set()
    _wait_for(lambda: writer.backlog == 0, 5, "the rows to be written")
    writer.stop()
    assert writer.dropped == 0
    assert _counts(url) == (70, 70)


@pytest.mark.postgres
def test_stop_writes_rows_submitted_during_the_last_flush(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    database = sa.make_url(postgres_url).database
    # another session creates the table without committing: the writer's first flush blocks in
    # its DDL step (CREATE TABLE waits for that transaction) until we roll it back
    blocker = postgres_server.connect(database)
    try:
        blocker.cursor().execute("CREATE TABLE prediction_log (id integer)")
        writer = _writer(postgres_url)
        writer.start()
        waiting = (
            "SELECT count(*) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND wait_event_type = 'Lock'"
        )
        _wait_for(lambda: postgres_server.execute(waiting) == 1, 5, "the writer's DDL step to wait")
        writer.submit_predictions("req-a", CREATED, MODEL_NAME, "1", _items(5))
        unblock = threading.Timer(0.3, blocker.rollback)  # after stop() has been called
        unblock.start()
        writer.stop()
        unblock.join()
    finally:
        blocker.close()
    assert writer.database_up
    assert (writer.backlog, writer.written) == (0, 5)
    assert _counts(postgres_url) == (5, 5)


def test_a_malformed_chunk_is_dropped_and_counted_and_the_writer_goes_on(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    good = _items(3)
    not_validated = [({"gender": "Male"}, 0.2, "low")]  # a patient the API never validated
    writer = _writer(url)
    writer.start()
    writer.submit_predictions("broken", CREATED, MODEL_NAME, "1", not_validated)
    writer.submit_predictions("req-a", CREATED, MODEL_NAME, "1", good)
    writer.stop()
    assert (writer.written, writer.dropped, writer.backlog) == (3, 1, 0)
    assert "dropped request broken's rows" in caplog.text
    _assert_rows_exact(url, _expected("req-a", "1", good))
