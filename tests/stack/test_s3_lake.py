"""The lake on a real S3 server (SeaweedFS): round trips, the stages, s3:// sources, and the
start-up check's messages when S3 is misconfigured or down."""

from __future__ import annotations

import hashlib
import importlib
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from strokeops.cli import app
from strokeops.config import Settings
from strokeops.errors import DataSourceError, LakeKeyNotFoundError, StorageError
from strokeops.ingest import ingest, manifest_key, raw_key
from strokeops.split import split
from strokeops.storage import (
    LocalLake,
    S3Lake,
    S3Options,
    check_lake,
    open_lake,
    read_frame,
    read_json,
)
from strokeops.validation import REFERENCE_PROFILE_KEY, validate
from tests.stack.conftest import S3Server, start_seaweed

pytestmark = pytest.mark.stack

FAIL_FAST_SECONDS = 10.0


def _objects(server: S3Server, prefix: str) -> list[str]:
    """Every object under a prefix of the bucket, seen with a plain boto3 client."""
    pages = (
        server.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=server.bucket, Prefix=f"{prefix}/")
    )
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _s3_settings(server: S3Server, prefix: str, tmp_path: Path, **extra) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        lake_uri=f"s3://{server.bucket}/{prefix}",
        s3_endpoint_url=server.endpoint,
        s3_access_key_id=server.access_key,
        s3_secret_access_key=server.secret_key,
        **extra,
    )


def test_round_trip_list_exists_and_uri(
    s3_lake: S3Lake, s3_server: S3Server, lake_prefix: str
) -> None:
    key = "raw/v1/data.csv"
    assert not s3_lake.exists(key)
    s3_lake.write_bytes(key, b"a,b\r\n1,2\r\n")
    assert s3_lake.exists(key)
    assert s3_lake.read_bytes(key) == b"a,b\r\n1,2\r\n"
    s3_lake.write_bytes(key, b"new")
    assert s3_lake.read_bytes(key) == b"new"

    s3_lake.write_bytes("raw/v1/manifest.json", b"{}")
    s3_lake.write_bytes("rawish/x", b"x")
    s3_lake.write_bytes("processed/v1/validated.parquet", b"PAR1")
    assert not s3_lake.exists("raw/v1")  # a folder is not an object
    assert s3_lake.list_keys("raw") == ["raw/v1/data.csv", "raw/v1/manifest.json"]
    assert s3_lake.list_keys("raw/") == s3_lake.list_keys("raw")
    assert s3_lake.list_keys("reports") == []
    assert s3_lake.list_keys("") == [
        "processed/v1/validated.parquet",
        "raw/v1/data.csv",
        "raw/v1/manifest.json",
        "rawish/x",
    ]
    # the keys are the lake's keys under the bucket's prefix
    assert _objects(s3_server, lake_prefix) == [
        f"{lake_prefix}/{key}" for key in s3_lake.list_keys("")
    ]
    assert s3_lake.uri(key) == f"s3://{s3_server.bucket}/{lake_prefix}/{key}"

    with pytest.raises(LakeKeyNotFoundError) as caught:
        s3_lake.read_bytes("raw/none/data.csv")
    assert isinstance(caught.value, FileNotFoundError)
    assert str(caught.value) == (
        f"s3://{s3_server.bucket}/{lake_prefix}/raw/none/data.csv does not exist at "
        f"S3 endpoint {s3_server.endpoint}"
    )


def test_check_passes_and_leaves_no_probe(s3_lake: S3Lake) -> None:
    check_lake(s3_lake)
    assert s3_lake.list_keys("") == []


def test_stages_write_the_same_keys_on_s3(
    s3_server: S3Server, lake_prefix: str, patients_csv: Path, tmp_path: Path
) -> None:
    settings = _s3_settings(s3_server, lake_prefix, tmp_path, data=str(patients_csv))
    lake = open_lake(settings)
    assert isinstance(lake, S3Lake)
    check_lake(lake)
    s3 = S3Options.from_settings(settings)

    ingested = ingest(settings.data, lake, s3=s3)
    version = ingested.data_version
    assert version == hashlib.sha256(patients_csv.read_bytes()).hexdigest()
    validation = validate(version, lake, settings)
    result = split(version, lake, seed=settings.seed, test_size=settings.test_size)

    prefix = f"split-seed{settings.seed}-test{settings.test_size:g}"
    expected = [
        f"processed/{version}/{prefix}/test.parquet",
        f"processed/{version}/{prefix}/train.parquet",
        f"processed/{version}/validated.parquet",
        manifest_key(version),
        raw_key(version),
        REFERENCE_PROFILE_KEY,
        validation.report_key,
    ]
    assert sorted(expected) == lake.list_keys("")
    assert _objects(s3_server, lake_prefix) == [f"{lake_prefix}/{key}" for key in sorted(expected)]
    assert lake.read_bytes(raw_key(version)) == patients_csv.read_bytes()
    assert read_json(lake, validation.report_key)["passed"] is True
    train, test = read_frame(lake, result.train_key), read_frame(lake, result.test_key)
    assert (len(train), len(test)) == (result.n_train, result.n_test)
    assert len(train) + len(test) == len(pd.read_csv(patients_csv))

    # the same bytes again: the same version, no new object
    again = ingest(settings.data, lake, s3=s3)
    assert again.data_version == version
    assert again.already_present
    assert _objects(s3_server, lake_prefix) == [f"{lake_prefix}/{key}" for key in sorted(expected)]


def test_ingest_from_an_s3_source(
    s3_server: S3Server, lake_prefix: str, patients_csv: Path, tmp_path: Path
) -> None:
    data = patients_csv.read_bytes()
    source_key = f"{lake_prefix}-sources/drop/stroke.csv"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=source_key, Body=data)
    uri = f"s3://{s3_server.bucket}/{source_key}"
    lake = LocalLake(tmp_path / "lake")  # the source's endpoint comes from the options alone

    result = ingest(uri, lake, s3=s3_server.options())

    assert result.data_version == hashlib.sha256(data).hexdigest()
    assert lake.read_bytes(result.raw_key) == data
    assert read_json(lake, manifest_key(result.data_version))["source"] == uri
    assert ingest(str(patients_csv), lake).already_present

    # into an S3 lake, without options: the lake's endpoint and credentials read the source
    s3_lake = S3Lake(s3_server.bucket, lake_prefix, s3_server.options())
    assert ingest(uri, s3_lake).data_version == result.data_version
    assert s3_lake.read_bytes(result.raw_key) == data


def test_s3_source_problems_are_data_source_errors(
    s3_server: S3Server, lake_prefix: str, tmp_path: Path
) -> None:
    lake = LocalLake(tmp_path / "lake")
    missing = f"s3://{s3_server.bucket}/{lake_prefix}/nowhere.csv"
    with pytest.raises(DataSourceError) as caught:
        ingest(missing, lake, s3=s3_server.options())
    assert str(caught.value).startswith(
        f"data object not found: {missing} does not exist at S3 endpoint {s3_server.endpoint}. "
        "Put the public Stroke Prediction Dataset"
    )

    no_bucket = "s3://no-such-bucket-here/stroke.csv"
    with pytest.raises(DataSourceError) as caught:
        ingest(no_bucket, lake, s3=s3_server.options())
    assert str(caught.value) == (
        f"could not read the data from {no_bucket}: bucket 'no-such-bucket-here' does not exist "
        f"at S3 endpoint {s3_server.endpoint}"
    )

    with pytest.raises(DataSourceError, match="names no object: give s3://bucket/key"):
        ingest(f"s3://{s3_server.bucket}/", lake, s3=s3_server.options())

    empty = f"{lake_prefix}/empty.csv"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=empty, Body=b"\n")
    with pytest.raises(DataSourceError, match=r"^the data source is empty: s3://"):
        ingest(f"s3://{s3_server.bucket}/{empty}", lake, s3=s3_server.options())
    assert not (tmp_path / "lake").exists()


def _timed_check(lake: S3Lake) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        check_lake(lake)
    return str(caught.value), time.monotonic() - started


def test_check_names_endpoint_and_bucket_on_wrong_credentials(s3_server: S3Server) -> None:
    lake = S3Lake(s3_server.bucket, "p", s3_server.options(secret_access_key="not-the-secret"))
    message, seconds = _timed_check(lake)
    assert message.startswith(
        f"the S3 endpoint {s3_server.endpoint} (bucket {s3_server.bucket!r}) rejected the "
        f"credentials while checking the lake s3://{s3_server.bucket}/p with a probe object "
    )
    assert "SignatureDoesNotMatch" in message
    assert seconds < FAIL_FAST_SECONDS

    unknown = S3Lake(s3_server.bucket, "p", s3_server.options(access_key_id="AKNOBODY"))
    assert "rejected the credentials" in _timed_check(unknown)[0]


def test_check_without_any_credentials(s3_server: S3Server) -> None:
    options = s3_server.options(access_key_id=None, secret_access_key=None)
    message, seconds = _timed_check(S3Lake(s3_server.bucket, "", options))
    assert message.startswith(
        f"no usable S3 credentials for the S3 endpoint {s3_server.endpoint} "
        f"(bucket {s3_server.bucket!r})"
    )
    assert "AWS_ACCESS_KEY_ID" in message
    assert seconds < FAIL_FAST_SECONDS


def test_a_missing_bucket_is_named(s3_server: S3Server) -> None:
    # (SeaweedFS creates a bucket on upload for admin identities, so read to meet it missing)
    lake = S3Lake("absent-bucket", "", s3_server.options())
    with pytest.raises(StorageError) as caught:
        lake.read_bytes("raw/x")
    assert str(caught.value) == (
        f"bucket 'absent-bucket' does not exist at S3 endpoint {s3_server.endpoint}"
    )


def test_check_fails_fast_when_the_server_stops(tmp_path: Path) -> None:
    with start_seaweed(tmp_path / "seaweed", bucket="short-lived") as (server, process):
        lake = S3Lake(server.bucket, "lake", server.options())
        check_lake(lake)
        process.terminate()
        process.wait(timeout=10)
        message, seconds = _timed_check(lake)
    assert message.startswith(
        f"cannot reach the S3 endpoint {server.endpoint} (bucket 'short-lived') while checking "
        "the lake s3://short-lived/lake with a probe object: "
    )
    assert seconds < FAIL_FAST_SECONDS


def test_check_fails_fast_on_a_closed_port(closed_port: int) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    options = S3Options(endpoint_url=endpoint, access_key_id="AK", secret_access_key="secret")
    message, seconds = _timed_check(S3Lake("stroke-lake", "", options))
    assert message.startswith(f"cannot reach the S3 endpoint {endpoint} (bucket 'stroke-lake')")
    assert "Could not connect to the endpoint URL" in message
    assert seconds < FAIL_FAST_SECONDS


runner = CliRunner()


def test_cli_run_with_s3_down_exits_1_and_registers_nothing(
    closed_port: int, patients_csv: Path, tmp_path: Path
) -> None:
    state = tmp_path / "fresh-state"
    endpoint = f"http://127.0.0.1:{closed_port}"
    env = {
        "STROKEOPS_DATA": str(patients_csv),
        "STROKEOPS_STATE_DIR": str(state),
        "STROKEOPS_LAKE_URI": "s3://stroke-lake/prod",
        "STROKEOPS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "AKSOMEONE",  # the standard variables work as well
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    importlib.import_module("strokeops.pipeline")  # time the run, not the first imports
    started = time.monotonic()
    result = runner.invoke(app, ["run"], env=env)
    assert time.monotonic() - started < FAIL_FAST_SECONDS
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert f"error: cannot reach the S3 endpoint {endpoint} (bucket 'stroke-lake')" in output
    assert "Traceback" not in output
    # stopped before ingest: no registry, no summary, no local lake
    assert not (state / "mlflow.db").exists()
    assert not (state / "last-run.json").exists()
    assert not (state / "lake").exists()


def test_cli_ingest_from_s3_into_an_s3_lake(
    s3_server: S3Server, lake_prefix: str, patients_csv: Path, tmp_path: Path
) -> None:
    data = patients_csv.read_bytes()
    source_key = f"{lake_prefix}-sources/stroke.csv"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=source_key, Body=data)
    env = {
        "STROKEOPS_STATE_DIR": str(tmp_path / "state"),
        "STROKEOPS_LAKE_URI": f"s3://{s3_server.bucket}/{lake_prefix}",
        "STROKEOPS_S3_ENDPOINT_URL": s3_server.endpoint,
        "STROKEOPS_S3_ACCESS_KEY_ID": s3_server.access_key,
        "STROKEOPS_S3_SECRET_ACCESS_KEY": s3_server.secret_key,
    }
    uri = f"s3://{s3_server.bucket}/{source_key}"
    result = runner.invoke(app, ["ingest", "--source", uri], env=env)
    assert result.exit_code == 0, result.output
    version = hashlib.sha256(data).hexdigest()
    assert result.output.strip() == version
    assert _objects(s3_server, lake_prefix) == [
        f"{lake_prefix}/{raw_key(version)}",
        f"{lake_prefix}/{manifest_key(version)}",
    ]
