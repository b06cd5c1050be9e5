"""Split: a seeded, stratified train/test split of a validated data version."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from strokeops.config import Settings
from strokeops.errors import NotFoundError
from strokeops.ingest import ingest
from strokeops.schema import COLUMNS
from strokeops.split import SplitResult, find_split, load_split, split, split_frame, split_prefix
from strokeops.storage import LocalLake, read_frame
from strokeops.validation import validate, validated_key


@pytest.fixture
def version(patients_csv: Path, lake: LocalLake, settings: Settings) -> str:
    """The generated 2000 patients, ingested and validated."""
    data_version = ingest(str(patients_csv), lake).data_version
    validate(data_version, lake, settings)
    return data_version


def test_split_keys_and_sizes(version: str, lake: LocalLake) -> None:
    result = split(version, lake, seed=42, test_size=0.2)
    prefix = f"processed/{version}/split-seed42-test0.2"
    assert result == SplitResult(
        data_version=version,
        seed=42,
        test_size=0.2,
        train_key=f"{prefix}/train.parquet",
        test_key=f"{prefix}/test.parquet",
        n_train=1600,
        n_test=400,
    )
    assert lake.exists(result.train_key)
    assert lake.exists(result.test_key)


@pytest.mark.parametrize(
    ("seed", "test_size", "prefix"),
    [
        (42, 0.2, "split-seed42-test0.2"),
        (7, 0.25, "split-seed7-test0.25"),
        (0, 0.1, "split-seed0-test0.1"),
    ],
)
def test_split_prefix(seed: int, test_size: float, prefix: str) -> None:
    assert split_prefix("abc", seed, test_size) == f"processed/abc/{prefix}"


def test_parts_are_disjoint_complete_and_keep_the_id(version: str, lake: LocalLake) -> None:
    train, test = load_split(split(version, lake, seed=42, test_size=0.2), lake)
    validated = read_frame(lake, validated_key(version))
    assert list(train.columns) == list(test.columns) == list(COLUMNS)
    assert set(train["id"]).isdisjoint(test["id"])
    assert sorted([*train["id"], *test["id"]]) == sorted(validated["id"])
    # every row is carried over whole
    rejoined = pd.concat([train, test]).sort_values("id").reset_index(drop=True)
    expected = validated.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(rejoined, expected)


@pytest.mark.parametrize("seed", [0, 1, 42])
@pytest.mark.parametrize("test_size", [0.1, 0.2, 0.3])
def test_split_is_stratified(patients: pd.DataFrame, seed: int, test_size: float) -> None:
    train, test = split_frame(patients, seed=seed, test_size=test_size)
    positives = int(patients["stroke"].sum())
    assert positives > 50
    # the test part holds its share of the positives, to within one row
    assert abs(test["stroke"].sum() - positives * len(test) / len(patients)) <= 1
    assert abs(train["stroke"].mean() - test["stroke"].mean()) <= 1 / len(test)
    assert train["stroke"].sum() + test["stroke"].sum() == positives


def test_same_seed_same_split(version: str, lake: LocalLake) -> None:
    first = load_split(split(version, lake, seed=3, test_size=0.2), lake)
    second = load_split(split(version, lake, seed=3, test_size=0.2), lake)
    for a, b in zip(first, second, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_another_seed_another_split(version: str, lake: LocalLake) -> None:
    _, test_a = load_split(split(version, lake, seed=3, test_size=0.2), lake)
    _, test_b = load_split(split(version, lake, seed=4, test_size=0.2), lake)
    assert len(test_a) == len(test_b)
    assert set(test_a["id"]) != set(test_b["id"])


def test_split_before_validate_is_not_found(patients_csv: Path, lake: LocalLake) -> None:
    data_version = ingest(str(patients_csv), lake).data_version
    with pytest.raises(NotFoundError) as caught:
        split(data_version, lake, seed=42, test_size=0.2)
    assert str(caught.value) == (
        f"data version {data_version} has not been validated; validate it first"
    )


def test_find_split_returns_the_saved_split(version: str, lake: LocalLake) -> None:
    saved = split(version, lake, seed=42, test_size=0.2)
    assert find_split(version, lake, seed=42, test_size=0.2) == saved


@pytest.mark.parametrize(("seed", "test_size"), [(43, 0.2), (42, 0.25)])
def test_find_split_of_an_unsaved_split_is_not_found(
    version: str, lake: LocalLake, seed: int, test_size: float
) -> None:
    split(version, lake, seed=42, test_size=0.2)
    with pytest.raises(NotFoundError) as caught:
        find_split(version, lake, seed=seed, test_size=test_size)
    assert str(caught.value) == (
        f"no split of {version} with seed {seed} and test size {test_size:g}; split first"
    )
