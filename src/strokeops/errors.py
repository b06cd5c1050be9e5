"""Exceptions a user can act on. The CLI turns each into a non-zero exit and one readable line."""

from __future__ import annotations


class StrokeOpsError(Exception):
    """Base class: every error the pipeline raises on purpose."""


class DataSourceError(StrokeOpsError):
    """The raw data could not be read from its source (missing file, bad URL, empty body)."""


class DataValidationError(StrokeOpsError):
    """The data broke a schema rule; ``report`` holds the details that were saved."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class DataDriftError(DataValidationError):
    """The data moved too far from the accepted reference profile."""


class StorageError(StrokeOpsError):
    """The data lake cannot be used: S3 unreachable, wrong credentials, no bucket, no access."""


class LakeKeyNotFoundError(StorageError, FileNotFoundError):
    """A key read from the lake is not there (a ``FileNotFoundError``, as for the local lake)."""


class NotFoundError(StrokeOpsError):
    """A data version, run or model version that a stage needs does not exist."""


class TrainingError(StrokeOpsError):
    """Training could not produce a usable model."""
