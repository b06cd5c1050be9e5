"""Ingest: raw bytes into the lake under their sha256, from a file or an http(s) URL.

s3:// sources are tested against a real S3 server in tests/stack/test_s3_lake.py."""

from __future__ import annotations

import functools
import hashlib
import http.client
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from strokeops.errors import DataSourceError
from strokeops.ingest import PUBLIC_SOURCE, ingest, manifest_key, raw_key, read_source
from strokeops.storage import LocalLake, read_json
from strokeops.synthetic import generate_patients, to_csv_bytes


def _lake_files(lake: LocalLake) -> list[str]:
    if not lake.root.exists():
        return []
    return sorted(p.relative_to(lake.root).as_posix() for p in lake.root.rglob("*") if p.is_file())


class _QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _TruncatedBodyHandler(http.server.BaseHTTPRequestHandler):
    """Promises 1000 bytes, sends a few, hangs up: a download cut off half-way."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"id,age\r\n1,50\r\n")
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler] | functools.partial) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def served_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    return folder


@pytest.fixture
def http_base(served_dir: Path) -> Iterator[str]:
    """Base URL of a local http.server that serves ``served_dir``; stopped after the test."""
    yield from _serve(functools.partial(_QuietFileHandler, directory=str(served_dir)))


@pytest.fixture
def truncating_base() -> Iterator[str]:
    yield from _serve(_TruncatedBodyHandler)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_same_bytes_twice_make_one_version(patients_csv: Path, lake: LocalLake) -> None:
    data = patients_csv.read_bytes()
    version = hashlib.sha256(data).hexdigest()

    first = ingest(str(patients_csv), lake)
    manifest = lake.read_bytes(manifest_key(version))
    second = ingest(str(patients_csv), lake)

    assert (first.data_version, second.data_version) == (version, version)
    assert (first.already_present, second.already_present) == (False, True)
    assert first.raw_key == second.raw_key == raw_key(version) == f"raw/{version}/data.csv"
    assert first.n_bytes == second.n_bytes == len(data)
    assert first.source == str(patients_csv)
    assert lake.read_bytes(first.raw_key) == data
    assert lake.read_bytes(manifest_key(version)) == manifest  # not rewritten
    assert _lake_files(lake) == [f"raw/{version}/data.csv", f"raw/{version}/manifest.json"]


def test_manifest_records_version_source_and_size(patients_csv: Path, lake: LocalLake) -> None:
    result = ingest(str(patients_csv), lake)
    manifest = read_json(lake, manifest_key(result.data_version))
    assert set(manifest) == {"data_version", "source", "n_bytes", "ingested_at"}
    assert manifest["data_version"] == result.data_version
    assert manifest["source"] == str(patients_csv)
    assert manifest["n_bytes"] == patients_csv.stat().st_size
    assert manifest["ingested_at"].endswith("+00:00")


def test_same_bytes_from_another_path_are_already_present(
    patients_csv: Path, lake: LocalLake, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.csv"
    copy.write_bytes(patients_csv.read_bytes())
    first = ingest(str(patients_csv), lake)
    second = ingest(str(copy), lake)
    assert second.data_version == first.data_version
    assert second.already_present


def test_different_bytes_make_different_versions(
    patients_csv: Path, lake: LocalLake, tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    other.write_bytes(to_csv_bytes(generate_patients(50, seed=1)))

    first = ingest(str(patients_csv), lake)
    second = ingest(str(other), lake)

    assert first.data_version != second.data_version
    assert second.data_version == hashlib.sha256(other.read_bytes()).hexdigest()
    assert not second.already_present
    assert [f for f in _lake_files(lake) if f.endswith("data.csv")] == sorted(
        [raw_key(first.data_version), raw_key(second.data_version)]
    )


def test_missing_file_names_the_path_and_the_public_data_set(
    tmp_path: Path, lake: LocalLake
) -> None:
    missing = tmp_path / "nowhere" / "healthcare-dataset-stroke-data.csv"
    expected = (
        f"data file not found: {missing.resolve()}. Put the public Stroke Prediction Dataset "
        "(Kaggle, fedesoriano/stroke-prediction-dataset, file healthcare-dataset-stroke-data.csv) "
        "there, or point STROKEOPS_DATA at it (a path, an http(s) URL or s3://bucket/key)."
    )
    with pytest.raises(DataSourceError) as caught:
        ingest(str(missing), lake)
    assert str(caught.value) == expected
    assert PUBLIC_SOURCE in expected
    assert _lake_files(lake) == []


def test_a_folder_is_not_a_data_file(tmp_path: Path, lake: LocalLake) -> None:
    with pytest.raises(DataSourceError, match=r"^the data source is a directory, not a file: "):
        ingest(str(tmp_path), lake)


@pytest.mark.parametrize("content", [b"", b" ", b"\r\n\r\n", b" \t\n  \r\n"])
def test_empty_or_whitespace_file_is_refused(
    tmp_path: Path, lake: LocalLake, content: bytes
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataSourceError) as caught:
        ingest(str(path), lake)
    assert str(caught.value) == f"the data source is empty: {path}"
    assert _lake_files(lake) == []


@pytest.mark.parametrize(
    ("source", "scheme"),
    [
        ("ftp://example.org/stroke.csv", "ftp"),
        ("gs://bucket/stroke.csv", "gs"),
        ("file:///tmp/stroke.csv", "file"),
    ],
)
def test_unsupported_scheme(lake: LocalLake, source: str, scheme: str) -> None:
    with pytest.raises(DataSourceError) as caught:
        ingest(source, lake)
    assert str(caught.value) == f"unsupported data source scheme {scheme!r} in {source}"


def test_ingest_from_http_url(
    http_base: str, served_dir: Path, patients_csv: Path, lake: LocalLake
) -> None:
    data = patients_csv.read_bytes()
    (served_dir / "stroke.csv").write_bytes(data)
    url = f"{http_base}/stroke.csv"

    result = ingest(url, lake)

    assert result.data_version == hashlib.sha256(data).hexdigest()
    assert result.source == url
    assert not result.already_present
    assert lake.read_bytes(result.raw_key) == data
    assert read_json(lake, manifest_key(result.data_version))["source"] == url
    # the same bytes from the local file are the same version
    assert ingest(str(patients_csv), lake).already_present


def test_http_not_found(http_base: str, lake: LocalLake) -> None:
    url = f"{http_base}/missing.csv"
    with pytest.raises(DataSourceError) as caught:
        ingest(url, lake)
    assert str(caught.value) == (
        f"could not download the data from {url}: HTTP Error 404: File not found"
    )


def test_http_empty_body(http_base: str, served_dir: Path, lake: LocalLake) -> None:
    (served_dir / "empty.csv").write_bytes(b"\r\n")
    url = f"{http_base}/empty.csv"
    with pytest.raises(DataSourceError) as caught:
        ingest(url, lake)
    assert str(caught.value) == f"the data source is empty: {url}"


def test_unreachable_url(closed_port: int, lake: LocalLake) -> None:
    url = f"http://127.0.0.1:{closed_port}/x.csv"
    with pytest.raises(
        DataSourceError,
        match=f"^{re.escape(f'could not download the data from {url}: ')}.*Connection refused",
    ):
        ingest(url, lake)
    assert _lake_files(lake) == []


def test_truncated_download_is_a_data_source_error(truncating_base: str) -> None:
    url = f"{truncating_base}/stroke.csv"
    with pytest.raises(DataSourceError, match=re.escape(f"could not download the data from {url}")):
        read_source(url)
