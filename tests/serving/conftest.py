"""A throwaway PostgreSQL server for the serving tests, never the machine's own.

The server is initdb'd into a fresh temporary folder, listens on 127.0.0.1 on a free port with
trust authentication and keeps its socket in its own folder. Tests may stop and start it; the
session fixture stops it (by its own ``pg_ctl``) and deletes the folder at the end. As root, the
binaries run as the ``postgres`` OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _find_bindir() -> Path | None:
    for candidate in sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")), reverse=True):
        if all((candidate / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One throwaway cluster: ``start()``, ``stop()`` and a SQLAlchemy ``url(database)``."""

    def __init__(self, bindir: Path, root: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.logfile = root / "server.log"
        self.run_as = run_as
        self.port = _free_port()

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{log[-3000:]}"
            )
        return result

    def init(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "-N")

    def start(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        self._run(
            "pg_ctl", "start", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-o", options
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", mode, "-w")

    def is_running(self) -> bool:
        """Whether this cluster's postmaster is alive (by its own ``pg_ctl status``)."""
        try:
            self._run("pg_ctl", "status", "-D", str(self.datadir), timeout=10)
        except RuntimeError:
            return False
        return True

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):  # a psycopg2 connection
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, connect_timeout=5
        )

    def execute(self, sql: str, database: str = "postgres") -> Any:
        """Run one statement in autocommit mode; the first column of its first row, if any."""
        connection = self.connect(database)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
                row = cursor.fetchone() if cursor.description else None
                return row[0] if row else None
        finally:
            connection.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway PostgreSQL server for the session (skips if none is installed)."""
    pytest.importorskip("psycopg2")
    bindir = _find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    run_as = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' OS user to run PostgreSQL")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is not available")
        run_as = "postgres"
    # not under pytest's tmp dir: that is private to root and the postgres user cannot enter it
    root = Path(tempfile.mkdtemp(prefix="strokeops-pg-"))
    if run_as:
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PostgresServer(bindir, root, run_as)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            if server.is_running():
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the throwaway server (restarted if a test left it down)."""
    if not postgres_server.is_running():
        postgres_server.start()
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url(name)
    if not postgres_server.is_running():
        postgres_server.start()
    postgres_server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
