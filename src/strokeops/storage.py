"""The data lake: a local folder by default, behind one small interface.

Keys are POSIX-style paths inside the lake (``raw/<version>/data.csv``). Zones: ``raw/``,
``processed/`` and ``reports/``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from strokeops.config import Settings


class Lake(Protocol):
    """What the stages need from storage."""

    def exists(self, key: str) -> bool: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def uri(self, key: str) -> str: ...


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


def open_lake(settings: Settings) -> Lake:
    return LocalLake(settings.lake_path)


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
