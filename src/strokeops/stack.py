"""The real stack on loopback: SeaweedFS S3, the MLflow tracking server on PostgreSQL, and
optionally Airflow; behind ``strokeops stack up | down | env``.

``Stack.plan(config)`` chooses ports and credentials (nothing starts); ``up()`` creates the
PostgreSQL databases and buckets, starts each service in its own process group, waits until it
is healthy, and writes ``<state_dir>/stack/state.json`` (PIDs) and ``stack.env`` (the
``STROKEOPS_*`` variables that point the CLI and the API at the stack). ``down()`` stops only
the process groups it started: terminate, wait, kill. Nothing happens at import time.

Who holds which secret: the S3 identity is generated (or taken from
``STROKEOPS_S3_ACCESS_KEY_ID`` / ``STROKEOPS_S3_SECRET_ACCESS_KEY``) and given to SeaweedFS, to
the MLflow server's environment (it proxies every artifact) and to the lake client through
``stack.env``. MLflow clients get only the server's URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit, urlunsplit

from strokeops.errors import StrokeOpsError

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"
HOST = "127.0.0.1"
STOP_TIMEOUT_SECONDS = 15.0
# every listening port of `weed mini`; left to their defaults, two servers would collide
WEED_PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
# the S3 clients of the stack ask for checksums only where S3 requires them, like the lake's
S3_CLIENT_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    "AWS_EC2_METADATA_DISABLED": "true",
}
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


class StackError(StrokeOpsError):
    """A service of the local stack could not be set up, started or stopped."""


# --- small helpers ---------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports free right now on 127.0.0.1, all different (held open together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def venv_tool(name: str) -> Path:
    """An executable beside this Python (the venv's ``weed``, ``mlflow``, ``airflow``)."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() else shutil.which(name)
    if not found:
        raise StackError(f"`{name}` not found beside {sys.executable} or on PATH")
    return Path(found)


def weed_command(weed: Path, folder: Path, s3_config: Path, ports: dict[str, int]) -> list[str]:
    """`weed mini` on loopback with the identities of ``s3_config`` and the given ports."""
    return [
        str(weed),
        "mini",
        f"-dir={folder}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-s3.config={s3_config}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]


def s3_identity_config(access_key: str, secret_key: str, name: str = "strokeops") -> dict:
    """SeaweedFS ``s3.json`` with one identity; without one, S3 accepts anonymous writes."""
    return {
        "identities": [
            {
                "name": name,
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (mode 0600, also when it already existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def http_ok(url: str, timeout: float = 2.0) -> bytes | None:
    """The body of a 200 answer, or None if the server does not answer or answers otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read() if response.status == 200 else None
    except (OSError, urllib.error.URLError):
        return None


def _clean_environment(skip: tuple[str, ...] = ("STROKEOPS_", "MLFLOW_")) -> dict[str, str]:
    """This process's environment without the caller's AWS and Airflow settings (and others
    named by ``skip``), so a service sees only what the stack gives it."""
    skip = ("AWS_", "AIRFLOW_", *skip)
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)} | QUIET_ENV
    # the venv's tools first: `airflow standalone` starts its parts as `airflow ...`
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


# --- PostgreSQL ------------------------------------------------------------------------------


def database_url(server_url: str, database: str) -> str:
    """The SQLAlchemy URL of one database on the server of ``server_url``."""
    parts = urlsplit(server_url)
    if not parts.scheme.startswith("postgresql") or not parts.hostname:
        raise StackError(f"{server_url!r} is not a PostgreSQL URL (postgresql+psycopg2://...)")
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def connect_postgres(server_url: str, database: str = "postgres") -> Any:
    import psycopg2

    parts = urlsplit(database_url(server_url, database))
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))
    try:
        connection = psycopg2.connect(dsn, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        where = f"{parts.hostname}:{parts.port or 5432}"
        raise StackError(f"cannot connect to PostgreSQL at {where}: {exc}".strip()) from exc
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return connection


def maintenance_database(server_url: str) -> str:
    """The database to connect to for CREATE/DROP: the URL's own, else ``postgres``."""
    return urlsplit(server_url).path.strip("/") or "postgres"


def create_database(server_url: str, name: str) -> bool:
    """Create the database if missing; True if it was created."""
    import psycopg2
    from psycopg2 import sql

    connection = connect_postgres(server_url, maintenance_database(server_url))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                return False
            try:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg2.errors.DuplicateDatabase:
                return False  # created meanwhile by someone else
            return True
    finally:
        connection.close()


def drop_database(server_url: str, name: str) -> None:
    """Drop the database if it exists, closing its connections (PostgreSQL 13+)."""
    from psycopg2 import sql

    connection = connect_postgres(server_url, maintenance_database(server_url))
    try:
        with connection.cursor() as cursor:
            statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            cursor.execute(statement.format(sql.Identifier(name)))
    finally:
        connection.close()


# --- processes -------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (field 3), or None if there is no such
    process; the command name in parentheses may hold spaces, so split after it."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the PID, it names one process."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


@dataclass
class Running:
    """A service's process group: its leader's PID (= the group id) and start time."""

    name: str
    pid: int
    started: int | None
    url: str
    log: str
    process: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def is_ours(self) -> bool:
        """The group still runs and its leader, if alive, is the process we started."""
        leader = start_time(self.pid)
        if leader is not None and self.started is not None and leader != self.started:
            return False  # the PID now belongs to another process
        return bool(group_members(self.pid))

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return start_time(self.pid) == self.started and self.pid in group_members(self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Terminate the group, wait, then kill what is left; False if nothing was running."""
        stopped = False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.is_ours():
                break
            stopped = True
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while group_members(self.pid) and time.monotonic() < deadline:
                if self.process is not None:
                    self.process.poll()  # reap the leader if it is our child
                time.sleep(0.1)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)  # reap it
        return stopped

    def as_dict(self) -> dict[str, Any]:
        fields = ("name", "pid", "started", "url", "log")
        return {name: getattr(self, name) for name in fields}


def launch(name: str, command: list[str], env: dict[str, str], log: Path, url: str) -> Running:
    """Start a command in its own process group (so one signal reaches all its children)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n--- {datetime.now(UTC).isoformat()} {shlex.join(command)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(name, process.pid, start_time(process.pid), url, str(log), process)


def wait_until(
    check: Callable[[], bool], running: Running, *, what: str, timeout: float, poll: float = 0.25
) -> None:
    """Wait until ``check()`` holds; StackError with the log's tail if the process exits or
    the time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        if not running.alive():
            raise StackError(f"{what} exited while starting; log {running.log}:\n{_tail(running)}")
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} not healthy within {timeout:g} s; log {running.log}:\n{_tail(running)}"
            )
        time.sleep(poll)


def _tail(running: Running, chars: int = 3000) -> str:
    try:
        return Path(running.log).read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


# --- services --------------------------------------------------------------------------------


class Service(Protocol):
    name: ClassVar[str]

    @property
    def url(self) -> str: ...
    def command(self) -> list[str]: ...
    def environment(self) -> dict[str, str]: ...
    def prepare(self) -> None: ...
    def healthy(self) -> bool: ...
    def ready(self) -> None: ...


@dataclass(frozen=True)
class SeaweedS3:
    """SeaweedFS (`weed mini`): S3 on loopback, one identity, data kept under ``folder``."""

    name: ClassVar[str] = "s3"
    folder: Path
    ports: dict[str, int]
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    buckets: tuple[str, ...] = ()
    region: str = "us-east-1"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ports['s3.port']}"

    def client(self, timeout: float = 2.0) -> Any:
        from strokeops.storage import S3Options

        return S3Options(
            endpoint_url=self.url,
            region=self.region,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            connect_timeout=timeout,
            read_timeout=timeout * 5,
            max_attempts=1,
        ).client()

    def command(self) -> list[str]:
        config = self.folder / "s3.json"
        return weed_command(venv_tool("weed"), self.folder / "data", config, self.ports)

    def environment(self) -> dict[str, str]:
        return _clean_environment()

    def prepare(self) -> None:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        identity = s3_identity_config(self.access_key, self.secret_key)
        write_private(self.folder / "s3.json", json.dumps(identity, indent=2))

    def healthy(self) -> bool:
        try:
            self.client(timeout=0.5).list_buckets()
        except Exception:
            return False
        return True

    def ready(self) -> None:
        """Create the buckets that are missing."""
        client = self.client()
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for bucket in self.buckets:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)


@dataclass(frozen=True)
class MlflowServer:
    """The MLflow tracking server: runs and registry in PostgreSQL, artifacts proxied to S3.

    Only this process holds the S3 keys; clients upload and download through the server."""

    name: ClassVar[str] = "mlflow"
    port: int
    postgres_url: str = field(repr=False)
    database: str
    artifacts_bucket: str
    s3: SeaweedS3 = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        # the backend URI (it may hold a password) goes through the environment, not argv
        return [
            str(venv_tool("mlflow")),
            "server",
            "--artifacts-destination",
            f"s3://{self.artifacts_bucket}",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]

    def environment(self) -> dict[str, str]:
        return (
            _clean_environment()
            | S3_CLIENT_ENV
            | {
                "MLFLOW_BACKEND_STORE_URI": database_url(self.postgres_url, self.database),
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # 440 MB instead of 2 GB
                "MLFLOW_S3_ENDPOINT_URL": self.s3.url,
                "AWS_ACCESS_KEY_ID": self.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
                "AWS_DEFAULT_REGION": self.s3.region,
            }
        )

    def prepare(self) -> None:
        create_database(self.postgres_url, self.database)  # MLflow creates its tables

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/health") is not None

    def ready(self) -> None:
        pass


@dataclass(frozen=True)
class AirflowStandalone:
    """`airflow standalone` (LocalExecutor) with its metadata DB in PostgreSQL and the repo's
    DAGs; the tasks see the stack through ``stack_env``."""

    name: ClassVar[str] = "airflow"
    home: Path
    port: int
    log_ports: tuple[int, int]
    postgres_url: str = field(repr=False)
    database: str
    dags_folder: Path
    stack_env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [str(venv_tool("airflow")), "standalone"]

    def environment(self) -> dict[str, str]:
        # the caller's STROKEOPS_* settings (data, trials...) reach the tasks; the stack's win
        return (
            _clean_environment(skip=("MLFLOW_",))
            | self.stack_env
            | {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(
                    self.postgres_url, self.database
                ),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "2",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__API__HOST": HOST,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
            }
        )

    def prepare(self) -> None:
        """Create and migrate the metadata database (idempotent, about 5-10 s)."""
        if not self.dags_folder.is_dir():
            raise StackError(f"DAGs folder {self.dags_folder} not found")
        create_database(self.postgres_url, self.database)
        self.home.mkdir(parents=True, exist_ok=True)
        command = [str(venv_tool("airflow")), "db", "migrate"]
        result = subprocess.run(
            command, env=self.environment(), capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-3000:]
            raise StackError(f"airflow db migrate failed ({result.returncode}):\n{output}")

    def healthy(self) -> bool:
        body = http_ok(f"{self.url}/api/v2/monitor/health")
        if body is None:
            return False
        health = json.loads(body)
        return all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler")
        )

    def ready(self) -> None:
        pass

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"


# --- the stack -------------------------------------------------------------------------------


def default_dags_folder() -> Path:
    """``dags/`` of the checkout this module runs from (an editable install)."""
    return Path(__file__).resolve().parents[2] / "dags"


@dataclass(frozen=True)
class StackConfig:
    """What to start and where; a port of 0 means a free one."""

    state_dir: Path = Path(".strokeops")
    postgres_url: str = DEFAULT_POSTGRES_URL
    lake_bucket: str = "strokeops-lake"
    mlflow_bucket: str = "strokeops-mlflow"
    database_prefix: str = "strokeops"  # databases <prefix>_mlflow, _airflow, _predictions
    s3_port: int = 0
    mlflow_port: int = 0
    airflow_port: int = 0
    with_airflow: bool = False
    dags_folder: Path = field(default_factory=default_dags_folder)
    start_timeout: float = 180.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", self.database_prefix):
            raise StackError(
                f"database prefix {self.database_prefix!r}: lower-case letters, digits and _"
            )

    @property
    def folder(self) -> Path:
        return (self.state_dir / "stack").resolve()

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    @property
    def env_file(self) -> Path:
        return self.folder / "stack.env"

    @property
    def mlflow_database(self) -> str:
        return f"{self.database_prefix}_mlflow"

    @property
    def airflow_database(self) -> str:
        return f"{self.database_prefix}_airflow"

    @property
    def predictions_database(self) -> str:
        return f"{self.database_prefix}_predictions"

    @property
    def databases(self) -> tuple[str, ...]:
        return (self.mlflow_database, self.airflow_database, self.predictions_database)


def _credentials() -> tuple[str, str]:
    """The S3 identity: ``STROKEOPS_S3_ACCESS_KEY_ID`` / ``_SECRET_ACCESS_KEY`` when both are
    set, else generated."""
    key = os.environ.get("STROKEOPS_S3_ACCESS_KEY_ID")
    secret = os.environ.get("STROKEOPS_S3_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret
    return f"AK{secrets.token_hex(8).upper()}", secrets.token_urlsafe(32)


@dataclass
class Stack:
    """The planned services (in start order) and the processes started for them."""

    config: StackConfig
    services: dict[str, Service]
    running: dict[str, Running] = field(default_factory=dict)

    @classmethod
    def plan(cls, config: StackConfig) -> Stack:
        """Choose ports and credentials; nothing is contacted or started."""
        spare = iter(free_ports(len(WEED_PORT_FLAGS) + 4))
        weed_ports = {flag: next(spare) for flag in WEED_PORT_FLAGS}
        weed_ports["s3.port"] = config.s3_port or weed_ports["s3.port"]
        access_key, secret_key = _credentials()
        s3 = SeaweedS3(
            folder=config.folder / "s3",
            ports=weed_ports,
            access_key=access_key,
            secret_key=secret_key,
            buckets=(config.lake_bucket, config.mlflow_bucket),
        )
        mlflow = MlflowServer(
            port=config.mlflow_port or next(spare),
            postgres_url=config.postgres_url,
            database=config.mlflow_database,
            artifacts_bucket=config.mlflow_bucket,
            s3=s3,
        )
        airflow = AirflowStandalone(
            home=config.folder / "airflow",
            port=config.airflow_port or next(spare),
            log_ports=(next(spare), next(spare)),
            postgres_url=config.postgres_url,
            database=config.airflow_database,
            dags_folder=config.dags_folder.resolve(),
            stack_env=stack_env(config, s3, mlflow),
        )
        return cls(config, {"s3": s3, "mlflow": mlflow, "airflow": airflow})

    @property
    def s3(self) -> SeaweedS3:
        return self.services["s3"]  # type: ignore[return-value]

    @property
    def mlflow(self) -> MlflowServer:
        return self.services["mlflow"]  # type: ignore[return-value]

    @property
    def airflow(self) -> AirflowStandalone:
        return self.services["airflow"]  # type: ignore[return-value]

    @property
    def env(self) -> dict[str, str]:
        """The ``STROKEOPS_*`` variables that point the CLI, the DAGs and the API here."""
        return stack_env(self.config, self.s3, self.mlflow)

    def up(self) -> Stack:
        """Start S3, MLflow and (``with_airflow``) Airflow, each healthy before the next;
        create the prediction-log database; write the state and env files. On any failure,
        stop what was started and raise StackError."""
        if any(running.is_ours() for running in read_state(self.config.state_file)):
            raise StackError(
                f"a stack is already running ({self.config.state_file}); "
                "run `strokeops stack down` first"
            )
        try:
            create_database(self.config.postgres_url, self.config.predictions_database)
            self.start("s3")
            self.start("mlflow")
            if self.config.with_airflow:
                self.start("airflow")
        except BaseException:
            self.down()
            raise
        write_private(self.config.env_file, env_file_text(self.env))
        return self

    def start(self, name: str) -> Running:
        """Start one service (prepare, launch, wait until healthy); no-op if it runs."""
        current = self.running.get(name)
        if current is not None:
            if current.alive():
                return current
            current.stop()  # what is left of a crashed start: children holding its port
        service = self.services[name]
        service.prepare()
        running = launch(
            name,
            service.command(),
            service.environment(),
            self.config.folder / "logs" / f"{name}.log",
            service.url,
        )
        self.running[name] = running
        self._write_state()
        wait_until(
            service.healthy,
            running,
            what=f"{name} at {service.url}",
            timeout=self.config.start_timeout,
        )
        service.ready()
        return running

    def stop(self, name: str) -> bool:
        """Stop one service's process group; True if it was running."""
        running = self.running.pop(name, None)
        stopped = running.stop() if running is not None else False
        self._write_state()
        return stopped

    def down(self) -> list[str]:
        """Stop every service this stack started, last started first; remove the state and
        env files. Returns the names of the services that were running."""
        stopped = [name for name in reversed(list(self.running)) if self.stop(name)]
        self.config.state_file.unlink(missing_ok=True)
        self.config.env_file.unlink(missing_ok=True)
        return stopped

    def _write_state(self) -> None:
        """Record the running process groups, for a later `strokeops stack down`."""
        state = {
            "written_at": datetime.now(UTC).isoformat(),
            "services": [running.as_dict() for running in self.running.values()],
        }
        write_private(self.config.state_file, json.dumps(state, indent=2))


def stack_env(config: StackConfig, s3: SeaweedS3, mlflow: MlflowServer) -> dict[str, str]:
    """The ``STROKEOPS_*`` variables for a stack's clients. The lake client needs the S3 keys;
    MLflow clients need only the server's URL (it proxies the artifacts)."""
    return {
        "STROKEOPS_LAKE_URI": f"s3://{config.lake_bucket}",
        "STROKEOPS_S3_ENDPOINT_URL": s3.url,
        "STROKEOPS_S3_ACCESS_KEY_ID": s3.access_key,
        "STROKEOPS_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "STROKEOPS_TRACKING_URI": mlflow.url,
        "STROKEOPS_PREDICTION_LOG_URL": database_url(
            config.postgres_url, config.predictions_database
        ),
    }


def env_file_text(env: dict[str, str]) -> str:
    lines = [
        "# the local stack (`strokeops stack up`); load it with: set -a; . <this file>; set +a",
        *(f"{name}={shlex.quote(value)}" for name, value in env.items()),
    ]
    return "\n".join(lines) + "\n"


def read_state(state_file: Path) -> list[Running]:
    """The processes recorded in a state file (none if there is no file)."""
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read the stack state {state_file}: {exc}") from exc
    return [Running(**entry) for entry in state.get("services", [])]


def read_env(env_file: Path) -> dict[str, str]:
    """The variables of a stack env file; StackError if there is none."""
    try:
        text = env_file.read_text()
    except FileNotFoundError as exc:
        raise StackError(f"no stack env file at {env_file}: run `strokeops stack up`") from exc
    env = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = shlex.split(value)[0] if value else ""
    return env


def down(state_dir: Path) -> list[str]:
    """Stop the stack recorded under ``state_dir`` (a later process than ``up``'s): only the
    process groups of its state file, and only if their leaders are the processes started."""
    config = StackConfig(state_dir=state_dir)
    recorded = read_state(config.state_file)
    stopped = [running.name for running in reversed(recorded) if running.stop()]
    config.state_file.unlink(missing_ok=True)
    config.env_file.unlink(missing_ok=True)
    return stopped
