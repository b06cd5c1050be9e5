"""Ingest: copy the raw file into the lake's raw zone, keyed by its sha256 (the data version).

Sources: a local path, an http(s) URL, or ``s3://bucket/key`` (read with the S3 endpoint,
region and credentials of the settings, the same as an S3 lake's).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from strokeops.errors import DataSourceError, LakeKeyNotFoundError, NotFoundError, StorageError
from strokeops.storage import Lake, S3Lake, S3Options, read_s3_object, write_json

log = logging.getLogger(__name__)

PUBLIC_SOURCE = (
    "the public Stroke Prediction Dataset (Kaggle, fedesoriano/stroke-prediction-dataset, "
    "file healthcare-dataset-stroke-data.csv)"
)
HTTP_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class IngestResult:
    data_version: str
    raw_key: str
    source: str
    n_bytes: int
    already_present: bool


def raw_key(data_version: str) -> str:
    return f"raw/{data_version}/data.csv"


def manifest_key(data_version: str) -> str:
    return f"raw/{data_version}/manifest.json"


def resolve_data_version(text: str, lake: Lake) -> str:
    """The full data version from a full one or a unique prefix (as ``run`` prints it)."""
    text = text.strip().lower()
    if re.fullmatch(r"[0-9a-f]{64}", text):
        return text
    if not re.fullmatch(r"[0-9a-f]{6,63}", text):
        raise NotFoundError(
            f"{text!r} is not a data version: give its sha256 (64 hex characters) "
            "or a unique prefix of at least 6"
        )
    matches = sorted({key.split("/")[1] for key in lake.list_keys("raw") if key.count("/") == 2})
    matches = [version for version in matches if version.startswith(text)]
    if len(matches) != 1:
        found = "no" if not matches else f"{len(matches)}"
        raise NotFoundError(f"{found} data versions in the lake start with {text!r}")
    return matches[0]


def _read_s3(source: str, s3: S3Options | None) -> bytes:
    try:
        return read_s3_object(source, s3)
    except LakeKeyNotFoundError as exc:
        raise DataSourceError(
            f"data object not found: {exc}. Put {PUBLIC_SOURCE} there, "
            "or point STROKEOPS_DATA at it."
        ) from exc
    except StorageError as exc:
        raise DataSourceError(f"could not read the data from {source}: {exc}") from exc
    except ValueError as exc:
        raise DataSourceError(f"not a usable S3 data source: {exc}") from exc


def read_source(source: str, s3: S3Options | None = None) -> bytes:
    """The bytes of a local file, an http(s) URL or an ``s3://bucket/key`` object (reached
    with ``s3``, else boto3's defaults); a clear error when there are none."""
    if source.startswith("s3://"):
        data = _read_s3(source, s3)
    elif source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=HTTP_TIMEOUT_SECONDS) as response:
                data = response.read()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise DataSourceError(f"could not download the data from {source}: {exc}") from exc
    elif "://" in source:
        scheme = source.split("://", 1)[0]
        raise DataSourceError(f"unsupported data source scheme {scheme!r} in {source}")
    else:
        path = Path(source)
        if path.is_dir():
            raise DataSourceError(f"the data source is a directory, not a file: {path.resolve()}")
        if not path.is_file():
            raise DataSourceError(
                f"data file not found: {path.resolve()}. Put {PUBLIC_SOURCE} there, "
                "or point STROKEOPS_DATA at it (a path, an http(s) URL or s3://bucket/key)."
            )
        data = path.read_bytes()
    if not data.strip():
        raise DataSourceError(f"the data source is empty: {source}")
    return data


def ingest(source: str, lake: Lake, *, s3: S3Options | None = None) -> IngestResult:
    """Store the source's bytes under their hash; the same bytes twice make one data version.

    ``s3`` says how to reach an ``s3://`` source (``S3Options.from_settings``); by default
    that of an S3 lake, else boto3's defaults."""
    if s3 is None and isinstance(lake, S3Lake):
        s3 = lake.options
    data = read_source(source, s3)
    data_version = hashlib.sha256(data).hexdigest()
    key = raw_key(data_version)
    already_present = lake.exists(key)
    if already_present:
        log.info("data version %s already in the lake; nothing copied", data_version[:12])
    else:
        lake.write_bytes(key, data)
        write_json(
            lake,
            manifest_key(data_version),
            {
                "data_version": data_version,
                "source": source,
                "n_bytes": len(data),
                "ingested_at": datetime.now(UTC).isoformat(),
            },
        )
        log.info("ingested %s bytes from %s as %s", len(data), source, data_version[:12])
    return IngestResult(data_version, key, source, len(data), already_present)
