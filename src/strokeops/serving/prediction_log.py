"""The prediction log: every prediction written to a database table, off the request path.

Requests append rows to a bounded in-memory buffer; one writer thread inserts them in batches.
If the database is down, rows wait in the buffer (up to ``log_buffer_rows``) and are written
when it returns; the table is created by an idempotent DDL step on the first good connection.
Rows carry the validated features, never names or patient identifiers.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from strokeops.redaction import without_credentials

log = logging.getLogger(__name__)
DROP_WARNING_SECONDS = 10.0

metadata = sa.MetaData()
prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("row_index", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("risk_level", sa.String(16), nullable=False),
    sa.Column("gender", sa.String(16), nullable=False),
    sa.Column("age", sa.Float, nullable=False),
    sa.Column("hypertension", sa.SmallInteger, nullable=False),
    sa.Column("heart_disease", sa.SmallInteger, nullable=False),
    sa.Column("ever_married", sa.String(8), nullable=False),
    sa.Column("work_type", sa.String(32), nullable=False),
    sa.Column("residence_type", sa.String(16), nullable=False),
    sa.Column("avg_glucose_level", sa.Float, nullable=False),
    sa.Column("bmi", sa.Float, nullable=True),
    sa.Column("smoking_status", sa.String(32), nullable=False),
)

Chunk = tuple[str, datetime, str, str, list[tuple[dict[str, Any], float, str]]]
RETRY_MAX_SECONDS = 5.0
SHUTDOWN_ATTEMPTS = 3
COLUMNS = tuple(column.name for column in prediction_log.columns if column.name != "id")


def log_values(
    patient: dict[str, Any],
    *,
    request_id: str,
    row_index: int,
    created_at: Any,
    model_name: str,
    model_version: str,
    probability: float,
    risk_level: str,
) -> tuple[Any, ...]:
    """A table row (in ``COLUMNS`` order) from a validated patient and its prediction."""
    return (
        request_id,
        row_index,
        created_at,
        model_name,
        model_version,
        probability,
        risk_level,
        patient["gender"],
        patient["age"],
        int(patient["hypertension"]),
        int(patient["heart_disease"]),
        patient["ever_married"],
        patient["work_type"],
        patient["residence_type"],
        patient["avg_glucose_level"],
        patient.get("bmi"),
        patient["smoking_status"],
    )


def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    """SQLite in WAL mode with ``synchronous=NORMAL``: a commit appends to the log instead of
    creating, syncing and deleting a rollback journal, and readers do not block the writer.
    Committed rows survive a crash of the API; a power cut may lose the last commits."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def insert_rows(connection: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows the cheapest way the database offers, in the writer thread.

    On PostgreSQL (psycopg2) that is ``COPY … FROM STDIN``; elsewhere (SQLite) multi-row
    ``INSERT … VALUES (…), (…)`` statements of plain tuples. Both hand the database many rows
    per call: SQLite's ``executemany`` releases and retakes the interpreter lock for every
    row, which under load cost the request thread more than the insert itself, and
    SQLAlchemy's Core insert of dicts costs three to ten times as much CPU per row.
    """
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg2":
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)  # None is an empty field: NULL in COPY's CSV
        buffer.seek(0)
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.copy_expert(_COPY_SQL, buffer)
        finally:
            cursor.close()
        return
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        connection.exec_driver_sql(
            _insert_sql(marker, len(chunk)), tuple(itertools.chain.from_iterable(chunk))
        )


ROWS_PER_STATEMENT = 500  # 500 rows x 17 columns: well under SQLite's 32,766 parameters
_COPY_SQL = f"COPY {prediction_log.name} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)"


@functools.cache
def _insert_sql(marker: str, n_rows: int) -> str:
    row = f"({', '.join([marker] * len(COLUMNS))})"
    values = ", ".join([row] * n_rows)
    return f"INSERT INTO {prediction_log.name} ({', '.join(COLUMNS)}) VALUES {values}"


class PredictionLog:
    """Buffered, batched, retrying writer of prediction rows."""

    def __init__(
        self, url: str, *, buffer_rows: int, batch_rows: int, flush_seconds: float
    ) -> None:
        self.url = url
        self.buffer_rows = buffer_rows
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        # requests append compact chunks; the writer thread expands them into table rows
        self._chunks: deque[Chunk] = deque()
        self._staged: list[tuple[Any, ...]] = []
        self._count_lock = threading.Lock()
        self._queued_rows = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: sa.Engine | None = None
        self._store_time: Callable[[datetime], Any] = lambda value: value
        self._table_ready = False
        self.written = 0
        self.dropped = 0
        self._dropped_warned, self._next_drop_warning = 0, 0.0
        self.database_up = False
        self.last_error: str | None = None

    @property
    def backlog(self) -> int:
        """Rows accepted but not yet written."""
        return self._queued_rows + len(self._staged)

    def submit_predictions(
        self,
        request_id: str,
        created_at: datetime,
        model_name: str,
        model_version: str,
        items: list[tuple[dict[str, Any], float, str]],
    ) -> None:
        """Queue (validated patient, probability, risk level) items without blocking.

        Beyond the buffer's bound, rows are dropped and counted (``dropped``), never blocking
        a prediction.
        """
        with self._count_lock:
            room = max(self.buffer_rows - self.backlog, 0)
            if room < len(items):
                self.dropped += len(items) - room
                items = items[:room]
            self._queued_rows += len(items)
        if items:
            self._chunks.append((request_id, created_at, model_name, model_version, items))
        if self._queued_rows >= self.batch_rows:
            self._wake.set()

    def _stage_chunks(self) -> None:
        """Expand queued chunks into table rows (writer thread only)."""
        while self._chunks:
            request_id, created_at, model_name, model_version, items = self._chunks.popleft()
            try:
                stored_time = self._store_time(created_at)
                rows = [
                    log_values(
                        row,
                        request_id=request_id,
                        row_index=index,
                        created_at=stored_time,
                        model_name=model_name,
                        model_version=model_version,
                        probability=probability,
                        risk_level=level,
                    )
                    for index, (row, probability, level) in enumerate(items)
                ]
            except (KeyError, TypeError, ValueError) as exc:
                # not a validated patient: a bug upstream; drop this chunk, keep the writer alive
                log.error("prediction log: dropped request %s's rows: %r", request_id, exc)
                rows = []
            # move the rows from queued to staged in one step, so backlog never counts twice
            with self._count_lock:
                self._staged.extend(rows)
                self._queued_rows -= len(items)
                self.dropped += len(items) - len(rows)

    def start(self) -> None:
        self._engine = sa.create_engine(self.url, pool_pre_ping=True)
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", _write_ahead_log)
        # the rows bypass SQLAlchemy's types: store the time as its DateTime type would
        dialect = self._engine.dialect
        process = prediction_log.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._store_time = process or (lambda value: value)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is pending (while the database answers), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        delay, attempts_after_stop = self.flush_seconds, 0
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            ok = self._flush()
            self._warn_of_drops()
            if self._stop.is_set():
                attempts_after_stop += 1
                if ok and self.backlog:
                    continue  # rows arrived during the last flush: write them too
                if ok or attempts_after_stop >= SHUTDOWN_ATTEMPTS:
                    if self.backlog:
                        log.error("prediction log: %s rows unwritten at shutdown", self.backlog)
                    return
            delay = self.flush_seconds if ok else min(delay * 2, RETRY_MAX_SECONDS)

    def _warn_of_drops(self) -> None:
        """A warning when rows were dropped since the last one, at most every
        ``DROP_WARNING_SECONDS`` (the count is also in /metrics and /health/ready)."""
        now = time.monotonic()
        if self.dropped > self._dropped_warned and now >= self._next_drop_warning:
            log.warning(
                "prediction log buffer full (%d rows): %d rows dropped so far",
                self.buffer_rows,
                self.dropped,
            )
            self._dropped_warned, self._next_drop_warning = self.dropped, now + DROP_WARNING_SECONDS

    def _flush(self) -> bool:
        """Insert pending rows in batches; False if the database failed (rows are kept)."""
        assert self._engine is not None
        self._stage_chunks()
        try:
            if not self._table_ready:
                metadata.create_all(self._engine, checkfirst=True)
                self._table_ready = True
            while self._staged:
                batch = self._staged[: self.batch_rows]
                with self._engine.begin() as connection:
                    insert_rows(connection, batch)
                with self._count_lock:
                    del self._staged[: len(batch)]
                self.written += len(batch)
                self._stage_chunks()
        except SQLAlchemyError as exc:
            if self.database_up or self.last_error is None:
                log.warning(
                    "prediction log database unavailable, buffering: %s", type(exc).__name__
                )
            self.database_up = False
            self.last_error = without_credentials(
                f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            )
            return False
        if not self.database_up:
            log.info("prediction log database reachable: %s", self._engine.url.render_as_string())
        self.database_up, self.last_error = True, None
        return True
