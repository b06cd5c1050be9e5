"""The data lake: a local folder by default, or any S3-compatible bucket, behind one interface.

Keys are POSIX-style paths inside the lake (``raw/<version>/data.csv``). Zones: ``raw/``,
``processed/`` and ``reports/``; on S3 they live under the bucket and the optional prefix of
``STROKEOPS_LAKE_URI`` (``s3://bucket/prefix``), with the same keys.
"""

from __future__ import annotations

import io
import json
import logging
import os
import posixpath
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from strokeops.config import Settings, parse_s3_uri
from strokeops.errors import LakeKeyNotFoundError, StorageError

log = logging.getLogger(__name__)

PROBE_PAYLOAD = b"strokeops lake check\n"


class Lake(Protocol):
    """What the stages need from storage."""

    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def uri(self, key: str) -> str: ...
    def check(self) -> None: ...


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


class LocalLake:
    """A lake in a local folder; writes are atomic (temp file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"lake key escapes the lake: {key!r}")
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of the files under a folder-like prefix, sorted."""
        folder = self._path(prefix) if prefix.strip("/") else self.root.resolve()
        if not folder.is_dir():
            return []
        root = self.root.resolve()
        return sorted(
            path.relative_to(root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(".tmp-")
        )

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def check(self) -> None:
        """Write, read back and delete a probe file; StorageError if the folder is unusable."""
        probe = f".tmp-check-{uuid.uuid4().hex}"  # .tmp- names are never listed
        try:
            self.write_bytes(probe, PROBE_PAYLOAD)
            try:
                if self.read_bytes(probe) != PROBE_PAYLOAD:
                    raise StorageError(f"the local lake {self.root.resolve()} returned other bytes")
            finally:
                self._path(probe).unlink(missing_ok=True)
        except OSError as exc:
            message = f"the local lake {self.root.resolve()} is not usable: {exc}"
            raise StorageError(message) from exc


# --- S3 -------------------------------------------------------------------------------------

# error codes S3 servers give for a wrong key id, a wrong secret or a bad session token
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
    }
)
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class S3Options:
    """How to reach S3: endpoint, region, credentials and the client's timeouts and retries.

    Unset credentials and endpoint fall back to boto3's own chain (``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3``, profiles...). Timeouts are small and
    retries few, so a down endpoint fails in seconds rather than minutes.
    """

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 3.0
    read_timeout: float = 20.0
    max_attempts: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Options:
        def secret(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        return cls(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=secret(settings.s3_access_key_id),
            secret_access_key=secret(settings.s3_secret_access_key),
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
            max_attempts=settings.s3_max_attempts,
        )

    def client(self) -> Any:
        """A new boto3 S3 client (path-style addressing, as S3-compatible servers expect)."""
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError
        except ImportError as exc:
            raise StorageError(
                "an S3 lake or data source needs boto3: install strokeops[train]"
            ) from exc
        config = Config(
            s3={"addressing_style": "path"},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            # checksums only where S3 requires them: some S3-compatible servers reject the rest
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            session = boto3.session.Session(
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                region_name=self.region,
            )
            return session.client("s3", endpoint_url=self.endpoint_url, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise StorageError(
                f"cannot set up an S3 client for endpoint {self.endpoint_url or 'AWS'} "
                f"(region {self.region}): {exc}"
            ) from exc


def _client_error_parts(exc: Exception) -> tuple[str, str, int]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), str(error.get("Message", "")), int(status or 0)


def _as_storage_error(exc: Exception, *, endpoint: str, bucket: str, action: str) -> StorageError:
    """One readable StorageError, naming the endpoint and the bucket, for a botocore error."""
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    where = f"S3 endpoint {endpoint} (bucket {bucket!r})"
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return StorageError(f"cannot reach the {where} while {action}: {exc}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"no usable S3 credentials for the {where} ({exc}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or STROKEOPS_S3_ACCESS_KEY_ID and "
            "STROKEOPS_S3_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ClientError):
        code, message, status = _client_error_parts(exc)
        detail = f"{code}: {message}" if message else code or f"HTTP {status}"
        if code in _BAD_CREDENTIALS:
            return StorageError(
                f"the {where} rejected the credentials while {action} ({detail}); "
                "check the access key id and the secret"
            )
        if code == "NoSuchBucket":
            return StorageError(f"bucket {bucket!r} does not exist at S3 endpoint {endpoint}")
        if code == "AccessDenied" or status == 403:
            return StorageError(f"the {where} denied access while {action} ({detail})")
        return StorageError(f"the {where} failed while {action} ({detail})")
    return StorageError(f"the {where} failed while {action}: {exc}")


def _normalized_key(key: str) -> str:
    """A lake key as a clean relative POSIX path; ValueError if it points outside the lake."""
    clean = posixpath.normpath(key) if key else ""
    if key.startswith("/") or clean in ("", ".", "..") or clean.startswith("../"):
        raise ValueError(f"lake key escapes the lake: {key!r}")
    return clean


class S3Lake:
    """A lake in an S3 bucket, under an optional prefix, on any S3-compatible endpoint.

    The boto3 client is created on first use. Every failure to reach or use S3 raises
    StorageError naming the endpoint and the bucket; reading a missing key raises
    LakeKeyNotFoundError (a FileNotFoundError, as for the local lake). A put is atomic: readers
    see the old object or the new one.
    """

    def __init__(
        self, bucket: str, prefix: str = "", options: S3Options | None = None, client: Any = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.options = options or S3Options()
        self._client = client
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Lake({self.root_uri!r}, endpoint={self.endpoint!r})"

    @property
    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use."""
        with self._lock:
            if self._client is None:
                self._client = self.options.client()
            return self._client

    @property
    def endpoint(self) -> str:
        """The endpoint URL requests go to (AWS's regional one when none is configured)."""
        if self.options.endpoint_url:
            return self.options.endpoint_url
        if self._client is not None:
            return self._client.meta.endpoint_url
        return f"AWS ({self.options.region})"

    def _object_key(self, key: str) -> str:
        clean = _normalized_key(key)
        return f"{self.prefix}/{clean}" if self.prefix else clean

    def _error(self, exc: Exception, action: str) -> StorageError:
        return _as_storage_error(exc, endpoint=self.endpoint, bucket=self.bucket, action=action)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self._object_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            code, _, status = _client_error_parts(exc)
            if code in _NOT_FOUND or status == 404:
                return False
            raise self._error(exc, f"looking up {object_key}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"looking up {object_key}") from exc
        return True

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of the objects under a folder-like prefix, sorted."""
        from botocore.exceptions import BotoCoreError, ClientError

        folder = prefix.strip("/")
        root = f"{self.prefix}/" if self.prefix else ""
        full = f"{self._object_key(folder)}/" if folder else root
        keys = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            ):
                keys += [item["Key"][len(root) :] for item in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, f"listing {full or '/'}") from exc
        return sorted(key for key in keys if key and not key.endswith("/"))

    def read_bytes(self, key: str) -> bytes:
        return self._get(self._object_key(key))

    def _get(self, object_key: str, action: str | None = None) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            return response["Body"].read()
        except ClientError as exc:
            code, _, status = _client_error_parts(exc)
            if code in _NOT_FOUND or (status == 404 and code != "NoSuchBucket"):
                raise LakeKeyNotFoundError(
                    f"s3://{self.bucket}/{object_key} does not exist at S3 endpoint {self.endpoint}"
                ) from exc
            raise self._error(exc, action or f"reading {object_key}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, action or f"reading {object_key}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        self._put(self._object_key(key), data)

    def _put(self, object_key: str, data: bytes, action: str | None = None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=object_key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, action or f"writing {object_key}") from exc

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(key)}"

    def check(self) -> None:
        """Put, get and delete a probe object; StorageError naming endpoint and bucket if not."""
        from botocore.exceptions import BotoCoreError, ClientError

        probe = self._object_key(f".strokeops-check-{uuid.uuid4().hex}")
        action = f"checking the lake {self.root_uri} with a probe object"
        self._put(probe, PROBE_PAYLOAD, action)
        try:
            if self._get(probe, action) != PROBE_PAYLOAD:
                raise StorageError(
                    f"the S3 endpoint {self.endpoint} (bucket {self.bucket!r}) returned other "
                    f"bytes than were written to {probe}"
                )
        finally:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=probe)
            except ClientError as exc:  # the lake never deletes: a refusal here is no failure
                log.warning("could not delete the probe s3://%s/%s: %s", self.bucket, probe, exc)
            except BotoCoreError as exc:
                raise self._error(exc, action) from exc
        log.info("lake %s at %s: put, get and delete work", self.root_uri, self.endpoint)


def read_s3_object(uri: str, options: S3Options | None = None) -> bytes:
    """The bytes of ``s3://bucket/key``; LakeKeyNotFoundError if missing, StorageError if S3
    cannot be used, ValueError if the URI is malformed."""
    bucket, key = parse_s3_uri(uri)
    if not key or uri.endswith("/"):
        raise ValueError(f"{uri!r} names no object: give s3://bucket/key")
    return S3Lake(bucket, "", options)._get(key)


def open_lake(settings: Settings) -> Lake:
    """The S3 lake when ``lake_uri`` is set, else the local folder lake. Nothing is contacted
    here: the S3 client is created on first use (``check_lake`` at the start of a run)."""
    if settings.lake_uri:
        bucket, prefix = parse_s3_uri(settings.lake_uri)
        return S3Lake(bucket, prefix, S3Options.from_settings(settings))
    return LocalLake(settings.lake_path)


def check_lake(lake: Lake) -> None:
    """The start-up self-check: the lake takes, returns and deletes a probe, or StorageError."""
    lake.check()


def write_json(lake: Lake, key: str, payload: Any) -> None:
    lake.write_bytes(key, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def read_json(lake: Lake, key: str) -> Any:
    return json.loads(lake.read_bytes(key))


def write_frame(lake: Lake, key: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    lake.write_bytes(key, buffer.getvalue())


def read_frame(lake: Lake, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(lake.read_bytes(key)))
