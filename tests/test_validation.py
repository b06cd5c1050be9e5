"""Validation: CSV parsing, the data contract, the saved report and the drift check."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from strokeops.config import Settings
from strokeops.errors import DataDriftError, DataValidationError, NotFoundError
from strokeops.ingest import ingest
from strokeops.profile import compute_profile
from strokeops.schema import COLUMNS
from strokeops.storage import LocalLake, read_frame, read_json
from strokeops.synthetic import generate_patients, to_csv_bytes
from strokeops.validation import (
    REFERENCE_PROFILE_KEY,
    parse_csv,
    report_key,
    validate,
    validate_frame,
    validated_key,
)

HEADER = ",".join(COLUMNS)
WORK_TYPES = "('Govt_job', 'Never_worked', 'Private', 'Self-employed', 'children')"


@pytest.fixture
def small() -> pd.DataFrame:
    """Eight generated patients, two of them with a stroke."""
    frame = generate_patients(8, seed=3)
    frame["stroke"] = [0, 1, 0, 0, 0, 1, 0, 0]
    return frame


def _csv(frame: pd.DataFrame) -> bytes:
    return to_csv_bytes(frame)


def _ingest_bytes(data: bytes, lake: LocalLake, tmp_path: Path, name: str = "in.csv") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return ingest(str(path), lake).data_version


# --- parse_csv and validate_frame ----------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda data: data, id="crlf"),
        pytest.param(lambda data: data.replace(b"\r\n", b"\n"), id="lf"),
        pytest.param(lambda data: b"\xef\xbb\xbf" + data, id="bom-crlf"),
        pytest.param(lambda data: b"\xef\xbb\xbf" + data.replace(b"\r\n", b"\n"), id="bom-lf"),
    ],
)
def test_line_ends_and_bom_are_tolerated(
    small: pd.DataFrame, encode: Callable[[bytes], bytes]
) -> None:
    data = _csv(small)
    assert data.count(b"\r\n") == 9  # to_csv_bytes writes CRLF, as the data set circulates
    frame = validate_frame(parse_csv(encode(data)))
    assert list(frame.columns) == list(COLUMNS)
    assert frame["id"].tolist() == small["id"].tolist()
    assert frame["gender"].tolist() == small["gender"].tolist()
    np.testing.assert_array_equal(frame["age"].to_numpy(), small["age"].to_numpy())
    assert frame["stroke"].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]


def test_missing_markers_become_nan_bmi() -> None:
    data = (
        f"{HEADER}\r\n"
        "1,Male,67,0,1,Yes,Private,Urban,228.69,36.6,formerly smoked,1\r\n"
        "2,Female,61,0,0,Yes,Self-employed,Rural,202.21,N/A,never smoked,0\r\n"
        "3,Other,8,0,0,No,children,Urban,95.0,,Unknown,0\r\n"
    ).encode()
    frame = validate_frame(parse_csv(data))
    assert frame["bmi"].isna().tolist() == [False, True, True]
    assert frame.loc[0, "bmi"] == 36.6
    assert frame.dtypes.map(str).to_dict() == {
        "id": "int64",
        "gender": "str",
        "age": "float64",
        "hypertension": "int64",
        "heart_disease": "int64",
        "ever_married": "str",
        "work_type": "str",
        "Residence_type": "str",
        "avg_glucose_level": "float64",
        "bmi": "float64",
        "smoking_status": "str",
        "stroke": "int64",
    }


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object})
        frame.loc[row, column] = value
        return frame

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(
            lambda f: f.drop(columns=["age"]),
            "data validation failed: required column 'age' is missing",
            id="missing-column",
        ),
        pytest.param(
            _set("age", 2, "abc"),
            "data validation failed: column 'age' broke coerce_dtype('float64') "
            "in 1 row(s) (line 4: 'abc')",
            id="non-numeric-age",
        ),
        pytest.param(
            _set("work_type", 3, "Alien"),
            f"data validation failed: column 'work_type' broke isin({WORK_TYPES}) "
            "in 1 row(s) (line 5: 'Alien')",
            id="unknown-category",
        ),
        pytest.param(
            _set("age", 1, 820),
            "data validation failed: column 'age' broke in_range(0.0, 120.0) "
            "in 1 row(s) (line 3: '820.0')",
            id="age-out-of-range",
        ),
        pytest.param(
            _set("avg_glucose_level", 6, 0),
            "data validation failed: column 'avg_glucose_level' broke in_range(30.0, 600.0) "
            "in 1 row(s) (line 8: '0.0')",
            id="glucose-out-of-range",
        ),
        pytest.param(
            _set("hypertension", 0, 2),
            "data validation failed: column 'hypertension' broke isin([0, 1]) "
            "in 1 row(s) (line 2: '2')",
            id="binary-out-of-range",
        ),
        pytest.param(
            _set("id", 4, 1),
            "data validation failed: column 'id' broke field_uniqueness "
            "in 2 row(s) (line 2: '1', line 6: '1')",
            id="duplicate-id",
        ),
        pytest.param(
            lambda f: f.assign(stroke=0),
            "data validation failed: the table broke the rule 'stroke has both classes'",
            id="one-class-target",
        ),
        pytest.param(
            _set("gender", 5, np.nan),
            "data validation failed: column 'gender' broke not_nullable in 1 row(s) (line 7: None)",
            id="missing-category",
        ),
    ],
)
def test_contract_violations_name_column_and_problem(
    small: pd.DataFrame, mutate: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(DataValidationError) as caught:
        validate_frame(parse_csv(_csv(mutate(small))))
    assert str(caught.value) == message


def test_errors_are_listed_per_rule_in_the_report(small: pd.DataFrame) -> None:
    frame = _set("age", 2, "abc")(_set("work_type", 3, "Alien")(small))
    with pytest.raises(DataValidationError) as caught:
        validate_frame(parse_csv(_csv(frame)))
    assert caught.value.report == {
        "errors": [
            {
                "column": "age",
                "rule": "coerce_dtype('float64')",
                "n_failures": 1,
                "examples": [{"line": 4, "value": "abc"}],
            },
            {
                "column": "work_type",
                "rule": f"isin({WORK_TYPES})",
                "n_failures": 1,
                "examples": [{"line": 5, "value": "Alien"}],
            },
        ]
    }


def test_examples_are_capped_at_five_per_rule(small: pd.DataFrame) -> None:
    frame = small.assign(work_type="Alien")
    with pytest.raises(DataValidationError) as caught:
        validate_frame(parse_csv(_csv(frame)))
    (error,) = caught.value.report["errors"]
    assert error["n_failures"] == 8
    assert [e["line"] for e in error["examples"]] == [2, 3, 4, 5, 6]


def test_line_numbers_count_blank_lines(small: pd.DataFrame) -> None:
    lines = _csv(_set("age", 2, "abc")(small)).split(b"\r\n")
    data = b"\r\n".join([*lines[:2], b"", *lines[2:]])  # blank file line 3; 'abc' on line 5
    with pytest.raises(DataValidationError) as caught:
        validate_frame(parse_csv(data))
    assert caught.value.report["errors"][0]["examples"] == [{"line": 5, "value": "abc"}]


def test_extra_columns_are_dropped(small: pd.DataFrame) -> None:
    frame = validate_frame(parse_csv(_csv(small.assign(notes="x"))))
    assert list(frame.columns) == list(COLUMNS)


def test_a_short_row_is_reported_as_missing_values(small: pd.DataFrame) -> None:
    lines = _csv(small).split(b"\r\n")
    lines[3] = b"999,Male"
    with pytest.raises(DataValidationError) as caught:
        validate_frame(parse_csv(b"\r\n".join(lines)))
    broken = {(e["column"], e["rule"]) for e in caught.value.report["errors"]}
    assert ("age", "not_nullable") in broken
    assert ("stroke", "coerce_dtype('int64')") in broken
    assert all(e["examples"] == [{"line": 4, "value": None}] for e in caught.value.report["errors"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "the file has no CSV header or rows", id="empty"),
        pytest.param(b" \r\n\r\n", "the file has no CSV header or rows", id="whitespace"),
        pytest.param(b"\xef\xbb\xbf", "the file has no CSV header or rows", id="bom-only"),
        pytest.param(
            f"{HEADER}\r\n".encode(), "the file has a header but no data rows", id="header-only"
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "the file is not a UTF-8 text CSV (undecodable byte at offset 0)",
            id="binary",
        ),
        pytest.param(
            b"id,age\r\n1,2\r\n\xff\xfe",
            "the file is not a UTF-8 text CSV (undecodable byte at offset 13)",
            id="binary-after-text",
        ),
        pytest.param(
            b'{"id": 1, "age": 67, "stroke": 1}',
            "the file looks like JSON, not a comma-separated CSV",
            id="json-one-line",
        ),
        pytest.param(
            b"id,age,stroke\r\n1,67,1\r\n2,61,0,extra,extra\r\n",
            "the file is not a well-formed CSV: Error tokenizing data. "
            "C error: Expected 3 fields in line 3, saw 5",
            id="ragged-rows",
        ),
    ],
)
def test_unreadable_files(data: bytes, message: str) -> None:
    with pytest.raises(DataValidationError) as caught:
        parse_csv(data)
    assert str(caught.value) == message
    assert caught.value.report == {}


def test_json_document_is_not_a_csv() -> None:
    data = b'[\n  {"id": 1, "age": 67},\n  {"id": 2, "age": 61}\n]\n'
    with pytest.raises(DataValidationError) as caught:
        validate_frame(parse_csv(data))
    assert str(caught.value) == "the file looks like JSON, not a comma-separated CSV"


# --- the validate stage --------------------------------------------------------------------


def test_validate_requires_ingested_data(lake: LocalLake, settings: Settings) -> None:
    with pytest.raises(NotFoundError) as caught:
        validate("0" * 64, lake, settings)
    assert str(caught.value) == f"no raw data for version {'0' * 64} in the lake; ingest it first"


def test_passing_run_saves_report_frame_and_reference(
    patients_csv: Path, patients: pd.DataFrame, lake: LocalLake, settings: Settings
) -> None:
    version = ingest(str(patients_csv), lake).data_version
    result = validate(version, lake, settings)

    assert result.report_key == report_key(version) == f"reports/{version}/validation.json"
    assert result.validated_key == f"processed/{version}/validated.parquet"
    assert (result.n_rows, result.reference_version, result.drift_accepted) == (2000, version, [])

    report = read_json(lake, result.report_key)
    assert report["passed"] is True
    assert report["data_version"] == version
    assert report["reference_version"] == version
    assert (report["errors"], report["drift"], report["extra_columns"]) == ([], [], [])
    assert report["n_rows"] == 2000
    assert report["profile"]["prevalence"] == pytest.approx(patients["stroke"].mean(), abs=1e-15)

    validated = read_frame(lake, result.validated_key)
    assert list(validated.columns) == list(COLUMNS)
    assert validated["id"].tolist() == patients["id"].tolist()
    assert validated["bmi"].isna().sum() == patients["bmi"].isna().sum()
    assert read_json(lake, REFERENCE_PROFILE_KEY)["data_version"] == version


def test_failing_run_saves_report_and_no_frame(
    small: pd.DataFrame, lake: LocalLake, settings: Settings, tmp_path: Path
) -> None:
    version = _ingest_bytes(_csv(_set("work_type", 3, "Alien")(small)), lake, tmp_path)
    with pytest.raises(DataValidationError) as caught:
        validate(version, lake, settings)

    report = read_json(lake, report_key(version))
    assert report == caught.value.report
    assert report["passed"] is False
    assert report["extra_columns"] == []
    assert report["errors"] == [
        {
            "column": "work_type",
            "rule": f"isin({WORK_TYPES})",
            "n_failures": 1,
            "examples": [{"line": 5, "value": "Alien"}],
        }
    ]
    assert not lake.exists(validated_key(version))
    assert not lake.exists(REFERENCE_PROFILE_KEY)


def test_unparseable_file_report_carries_the_message(
    lake: LocalLake, settings: Settings, tmp_path: Path
) -> None:
    version = _ingest_bytes(b"\x89PNG\r\n\x1a\n", lake, tmp_path)
    with pytest.raises(DataValidationError, match="not a UTF-8 text CSV"):
        validate(version, lake, settings)
    report = read_json(lake, report_key(version))
    assert report["passed"] is False
    assert report["errors"] == [
        {
            "column": None,
            "rule": "parse",
            "n_failures": 1,
            "examples": [],
            "message": "the file is not a UTF-8 text CSV (undecodable byte at offset 0)",
        }
    ]
    assert not lake.exists(validated_key(version))


def test_extra_columns_are_reported_and_dropped(
    small: pd.DataFrame, lake: LocalLake, settings: Settings, tmp_path: Path
) -> None:
    version = _ingest_bytes(_csv(small.assign(source_system="A", notes="")), lake, tmp_path)
    result = validate(version, lake, settings)
    assert read_json(lake, result.report_key)["extra_columns"] == ["notes", "source_system"]
    assert list(read_frame(lake, result.validated_key).columns) == list(COLUMNS)


@pytest.fixture
def reference_version(patients_csv: Path, lake: LocalLake, settings: Settings) -> str:
    """The generated 2000 patients, validated first and so the drift reference."""
    version = ingest(str(patients_csv), lake).data_version
    assert validate(version, lake, settings).reference_version == version
    return version


def test_prevalence_shift_is_drift(
    reference_version: str,
    patients: pd.DataFrame,
    lake: LocalLake,
    settings: Settings,
    tmp_path: Path,
) -> None:
    shifted = generate_patients(2000, seed=8, prevalence=0.15)
    version = _ingest_bytes(_csv(shifted), lake, tmp_path, "shifted.csv")
    before, after = patients["stroke"].mean(), shifted["stroke"].mean()
    assert after > 2.5 * before

    with pytest.raises(DataDriftError) as caught:
        validate(version, lake, settings)

    assert str(caught.value) == (
        f"the data moved away from the accepted reference {reference_version[:12]}: "
        f"stroke prevalence: {before:.4g} -> {after:.4g} (limit 0.02). If the change is "
        "deliberate, re-run with --accept-drift to make this data the new reference."
    )
    report = read_json(lake, report_key(version))
    assert report["passed"] is False
    assert [d["statistic"] for d in report["drift"]] == ["stroke prevalence"]
    assert not lake.exists(validated_key(version))
    assert read_json(lake, REFERENCE_PROFILE_KEY)["data_version"] == reference_version

    accepted = validate(version, lake, settings, accept_drift=True)
    assert accepted.reference_version == version
    assert [d["statistic"] for d in accepted.drift_accepted] == ["stroke prevalence"]
    assert read_json(lake, REFERENCE_PROFILE_KEY) == {
        "data_version": version,
        "profile": compute_profile(validate_frame(parse_csv(_csv(shifted)))),
    }
    assert read_json(lake, report_key(version))["passed"] is True
    assert lake.exists(validated_key(version))
    # the accepted data is now the reference: validating it again finds no drift
    assert validate(version, lake, settings).drift_accepted == []


def test_age_shift_is_drift(
    reference_version: str,
    patients: pd.DataFrame,
    lake: LocalLake,
    settings: Settings,
    tmp_path: Path,
) -> None:
    version = _ingest_bytes(_csv(patients.assign(age=patients["age"] + 20)), lake, tmp_path)
    with pytest.raises(DataDriftError) as caught:
        validate(version, lake, settings)
    message = str(caught.value)
    for level in (5, 25, 50, 75, 95):
        assert f"age q{level}: " in message
    assert "prevalence" not in message
    assert "re-run with --accept-drift" in message
    assert re.search(r"age q50: (\S+) -> (\S+) ", message).groups() == (
        f"{patients['age'].median():.4g}",
        f"{patients['age'].median() + 20:.4g}",
    )


def test_unshifted_resample_is_not_drift(
    reference_version: str, lake: LocalLake, settings: Settings, tmp_path: Path
) -> None:
    version = _ingest_bytes(_csv(generate_patients(2000, seed=8)), lake, tmp_path)
    result = validate(version, lake, settings)
    assert result.drift_accepted == []
    assert result.reference_version == reference_version
    assert read_json(lake, REFERENCE_PROFILE_KEY)["data_version"] == reference_version
    assert read_json(lake, report_key(version))["reference_version"] == reference_version
