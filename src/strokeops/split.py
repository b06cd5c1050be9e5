"""Split: a stratified train/test split of a validated data version, saved as parquet."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from strokeops.errors import NotFoundError
from strokeops.ingest import resolve_data_version
from strokeops.schema import TARGET
from strokeops.storage import Lake, read_frame, write_frame
from strokeops.validation import validated_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitResult:
    data_version: str
    seed: int
    test_size: float
    train_key: str
    test_key: str
    n_train: int
    n_test: int


def split_prefix(data_version: str, seed: int, test_size: float) -> str:
    return f"processed/{data_version}/split-seed{seed}-test{test_size:g}"


def split_frame(
    frame: pd.DataFrame, *, seed: int, test_size: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified on the target, so both parts keep the rare-event rate."""
    train_frame, test_frame = train_test_split(
        frame, test_size=test_size, stratify=frame[TARGET], random_state=seed
    )
    return train_frame.reset_index(drop=True), test_frame.reset_index(drop=True)


def split(data_version: str, lake: Lake, *, seed: int, test_size: float) -> SplitResult:
    """Split a validated data version; re-running with the same inputs rewrites the same files."""
    data_version = resolve_data_version(data_version, lake)
    if not lake.exists(validated_key(data_version)):
        raise NotFoundError(
            f"data version {data_version} has not been validated; validate it first"
        )
    train_frame, test_frame = split_frame(
        read_frame(lake, validated_key(data_version)), seed=seed, test_size=test_size
    )
    prefix = split_prefix(data_version, seed, test_size)
    result = SplitResult(
        data_version=data_version,
        seed=seed,
        test_size=test_size,
        train_key=f"{prefix}/train.parquet",
        test_key=f"{prefix}/test.parquet",
        n_train=len(train_frame),
        n_test=len(test_frame),
    )
    write_frame(lake, result.train_key, train_frame)
    write_frame(lake, result.test_key, test_frame)
    log.info(
        "split %s: %s train rows, %s test rows",
        data_version[:12],
        *map(len, (train_frame, test_frame)),
    )
    return result


def load_split(result: SplitResult, lake: Lake) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_frame(lake, result.train_key), read_frame(lake, result.test_key)


def find_split(data_version: str, lake: Lake, *, seed: int, test_size: float) -> SplitResult:
    """The saved split of a data version, for stages run one at a time."""
    data_version = resolve_data_version(data_version, lake)
    prefix = split_prefix(data_version, seed, test_size)
    train_key, test_key = f"{prefix}/train.parquet", f"{prefix}/test.parquet"
    if not (lake.exists(train_key) and lake.exists(test_key)):
        raise NotFoundError(
            f"no split of {data_version} with seed {seed} and test size {test_size:g}; split first"
        )
    return SplitResult(
        data_version=data_version,
        seed=seed,
        test_size=test_size,
        train_key=train_key,
        test_key=test_key,
        n_train=len(read_frame(lake, train_key)),
        n_test=len(read_frame(lake, test_key)),
    )
