"""The local lake: keys, atomic writes, the json / parquet helpers; what an S3 lake does
without a server (tests/stack has the real S3 tests)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from strokeops.config import Settings
from strokeops.errors import StorageError
from strokeops.storage import (
    LocalLake,
    S3Lake,
    S3Options,
    check_lake,
    open_lake,
    read_frame,
    read_json,
    write_frame,
    write_json,
)


def _temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.startswith(".tmp-")]


def test_round_trip_creates_folders_and_overwrites(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    key = "raw/v1/data.csv"
    assert not lake.exists(key)

    lake.write_bytes(key, b"a,b\r\n1,2\r\n")
    assert lake.exists(key)
    assert lake.read_bytes(key) == b"a,b\r\n1,2\r\n"
    assert (tmp_path / "lake" / "raw" / "v1" / "data.csv").read_bytes() == b"a,b\r\n1,2\r\n"

    lake.write_bytes(key, b"new")
    assert lake.read_bytes(key) == b"new"


def test_exists_is_false_for_a_folder(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.write_bytes("raw/v1/data.csv", b"x")
    assert not lake.exists("raw/v1")


def test_uri_is_the_file_uri_of_the_resolved_path(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    expected = (tmp_path / "lake" / "reports" / "r.json").resolve().as_uri()
    assert lake.uri("reports/r.json") == expected
    assert expected.startswith("file:///")


def test_reading_a_missing_key_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalLake(tmp_path).read_bytes("raw/none/data.csv")


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    for i in range(5):
        lake.write_bytes("raw/v/data.csv", bytes([i]) * 1000)
        lake.write_bytes(f"reports/v{i}/validation.json", b"{}")
    assert _temp_files(tmp_path) == []
    assert sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()
    ) == [
        "raw/v/data.csv",
        *(f"reports/v{i}/validation.json" for i in range(5)),
    ]


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.write_bytes("processed/v/train.parquet", b"x")
    with pytest.raises(IsADirectoryError):
        lake.write_bytes("processed/v", b"a key that is already a folder")
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("key", ["../x", "../../etc/passwd", "/etc/passwd", "a/../../x", "", "."])
@pytest.mark.parametrize(
    "operation",
    [
        lambda lake, key: lake.exists(key),
        lambda lake, key: lake.read_bytes(key),
        lambda lake, key: lake.write_bytes(key, b"x"),
        lambda lake, key: lake.uri(key),
    ],
    ids=["exists", "read_bytes", "write_bytes", "uri"],
)
def test_keys_outside_the_lake_are_refused(tmp_path: Path, key: str, operation) -> None:
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(ValueError, match=f"^{re.escape(f'lake key escapes the lake: {key!r}')}$"):
        operation(lake, key)
    assert not (tmp_path / "x").exists()


def test_a_key_with_dot_dot_that_stays_inside_is_allowed(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.write_bytes("a/../b.txt", b"x")
    assert (tmp_path / "b.txt").read_bytes() == b"x"


def test_a_symlink_out_of_the_lake_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "lake"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="lake key escapes the lake: 'link/x'"):
        LocalLake(root).write_bytes("link/x", b"x")
    assert list(outside.iterdir()) == []


def test_open_lake_uses_the_settings_lake_path(settings: Settings) -> None:
    lake = open_lake(settings)
    assert isinstance(lake, LocalLake)
    assert lake.root == settings.lake_path
    assert settings.lake_path == (settings.state_dir / "lake").resolve()


def test_write_json_is_sorted_indented_and_stringifies_unknown_types(lake: LocalLake) -> None:
    stamp = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    write_json(lake, "reports/r.json", {"b": 1, "a": [1.5, None], "when": stamp})
    assert lake.read_bytes("reports/r.json") == (
        b'{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1,\n'
        b'  "when": "2024-01-02 03:04:05+00:00"\n}'
    )
    assert read_json(lake, "reports/r.json") == {
        "a": [1.5, None],
        "b": 1,
        "when": "2024-01-02 03:04:05+00:00",
    }


def test_frame_round_trip_drops_the_index(lake: LocalLake) -> None:
    frame = pd.DataFrame(
        {
            "id": np.array([7, 3, 5], dtype="int64"),
            "gender": ["Male", "Female", "Other"],
            "bmi": [21.5, np.nan, 30.0],
        },
        index=[10, 20, 30],
    )
    write_frame(lake, "processed/v/f.parquet", frame)
    back = read_frame(lake, "processed/v/f.parquet")
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_dtype=False)
    assert back["id"].dtype == "int64"
    assert back["bmi"].dtype == "float64"
    assert lake.read_bytes("processed/v/f.parquet")[:4] == b"PAR1"


def test_local_check_leaves_nothing_behind(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    check_lake(lake)
    assert [p for p in (tmp_path / "lake").rglob("*") if p.is_file()] == []


def test_local_check_names_an_unusable_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    lake = LocalLake(tmp_path / "file")  # a file where the lake folder should be
    with pytest.raises(StorageError, match=f"^the local lake {re.escape(str(tmp_path))}/file is"):
        check_lake(lake)


def test_open_lake_makes_an_s3_lake_without_contacting_it(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        lake_uri="s3://stroke-lake/team/ops/",
        s3_endpoint_url="http://127.0.0.1:9/",
        s3_region="eu-west-1",
        s3_access_key_id="AKID",
        s3_secret_access_key="SECRET",
    )
    lake = open_lake(settings)
    assert isinstance(lake, S3Lake)
    assert (lake.bucket, lake.prefix, lake.endpoint) == (
        "stroke-lake",
        "team/ops",
        "http://127.0.0.1:9",
    )
    assert lake._client is None  # created on first use only
    assert lake.options == S3Options(
        endpoint_url="http://127.0.0.1:9",
        region="eu-west-1",
        access_key_id="AKID",
        secret_access_key="SECRET",
    )
    assert "SECRET" not in repr(lake.options)
    assert lake.uri("raw/v1/data.csv") == "s3://stroke-lake/team/ops/raw/v1/data.csv"
    assert S3Lake("b").uri("a/../reports/r.json") == "s3://b/reports/r.json"


@pytest.mark.parametrize("key", ["../x", "../../etc/passwd", "/etc/passwd", "a/../../x", "", "."])
def test_s3_keys_outside_the_lake_are_refused(key: str) -> None:
    lake = S3Lake("bucket", "prefix", S3Options(endpoint_url="http://127.0.0.1:9"))
    for operation in (lake.exists, lake.read_bytes, lake.uri, lambda k: lake.write_bytes(k, b"")):
        with pytest.raises(ValueError, match=re.escape(f"lake key escapes the lake: {key!r}")):
            operation(key)
    assert lake._client is None
