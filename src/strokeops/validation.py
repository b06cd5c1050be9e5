"""Validate: parse the raw CSV, check it against the data contract (pandera), check drift.

A failed validation raises and saves a JSON report naming the columns, the rule and a few
offending rows; a passing one saves its report too and the validated frame for the split.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from strokeops.config import Settings
from strokeops.errors import DataDriftError, DataValidationError, NotFoundError
from strokeops.ingest import raw_key, resolve_data_version
from strokeops.profile import compare_profiles, compute_profile, findings_as_dicts
from strokeops.schema import (
    BINARY,
    CATEGORIES,
    COLUMNS,
    ID,
    MISSING_MARKERS,
    NULLABLE,
    NUMERIC_RANGES,
    TARGET,
)
from strokeops.storage import Lake, read_json, write_frame, write_json

log = logging.getLogger(__name__)

REFERENCE_PROFILE_KEY = "reports/reference-profile.json"
EXAMPLES_PER_RULE = 5


@dataclass(frozen=True)
class ValidationResult:
    data_version: str
    report_key: str
    validated_key: str
    n_rows: int
    reference_version: str
    drift_accepted: list[dict[str, Any]] = field(default_factory=list)


def report_key(data_version: str) -> str:
    return f"reports/{data_version}/validation.json"


def validated_key(data_version: str) -> str:
    return f"processed/{data_version}/validated.parquet"


def _both_classes(frame: pd.DataFrame) -> bool:
    return frame[TARGET].nunique() == 2 if TARGET in frame else True


@dataclass(frozen=True)
class Volume:
    """How much data a model needs: rows, rows of each class, observed values."""

    min_rows: int = 0
    min_class_rows: int = 0
    max_missing_rate: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Volume:
        return cls(settings.min_rows, settings.min_class_rows, settings.max_missing_rate)


def build_schema(volume: Volume = Volume()) -> pa.DataFrameSchema:
    """The data contract as a pandera schema; values are coerced from the CSV's strings."""
    columns: dict[str, pa.Column] = {ID: pa.Column(int, unique=True, coerce=True)}
    for name, allowed in CATEGORIES.items():
        columns[name] = pa.Column(str, pa.Check.isin(allowed))
    for name in BINARY:
        columns[name] = pa.Column(int, pa.Check.isin([0, 1]), coerce=True)
    columns[TARGET] = pa.Column(
        int,
        [
            pa.Check.isin([0, 1]),
            pa.Check(
                lambda s: (
                    s.value_counts().reindex([0, 1], fill_value=0).min() >= volume.min_class_rows
                ),
                name=f"at least {volume.min_class_rows} rows of each class",
                element_wise=False,
            ),
        ],
        coerce=True,
    )
    for name, (low, high) in NUMERIC_RANGES.items():
        checks = [pa.Check.in_range(low, high)]
        if name in NULLABLE:
            checks.append(
                pa.Check(
                    lambda s: s.isna().mean() <= volume.max_missing_rate,
                    name=f"at most {volume.max_missing_rate:.0%} missing",
                    element_wise=False,
                )
            )
        columns[name] = pa.Column(float, checks, nullable=name in NULLABLE, coerce=True)
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(_both_classes, name=f"{TARGET} has both classes", element_wise=False),
            pa.Check(
                lambda df: len(df) >= volume.min_rows,
                name=f"at least {volume.min_rows} rows",
                element_wise=False,
            ),
        ],
        strict=False,
    )


def parse_csv(data: bytes) -> pd.DataFrame:
    """Read raw CSV bytes as strings; tolerates CRLF line ends and a UTF-8 BOM."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"the file is not a UTF-8 text CSV (undecodable byte at offset {exc.start})"
        ) from exc
    if not text.strip():
        raise DataValidationError("the file has no CSV header or rows")
    first_line = text.lstrip().split("\n", 1)[0]
    if first_line.startswith(("{", "[")):
        raise DataValidationError("the file looks like JSON, not a comma-separated CSV")
    if "\t" in first_line and "," not in first_line:
        raise DataValidationError("the file looks tab-separated; a comma-separated CSV is expected")
    try:
        with warnings.catch_warnings():
            # pandas only warns when every row is longer than the header: make it an error
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text),
                dtype=str,
                index_col=False,
                keep_default_na=False,
                na_values=list(MISSING_MARKERS),
                # keep blank lines as empty rows, then drop them, so that index + 2 stays the
                # file line number in error reports
                skip_blank_lines=False,
            ).dropna(how="all")
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError("the file has no CSV header or rows") from exc
    except pd.errors.ParserWarning as exc:
        raise DataValidationError(
            "the file is not a well-formed CSV: its rows have more fields than its header"
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataValidationError(f"the file is not a well-formed CSV: {str(exc).strip()}") from exc
    if frame.empty:
        raise DataValidationError("the file has a header but no data rows")
    return frame


def _relevant_failures(failure_cases: pd.DataFrame) -> pd.DataFrame:
    """Drop the echoes of a failed coercion (a dtype check, a range check on strings)."""
    uncoercible = set(
        failure_cases.loc[failure_cases["check"].str.startswith("coerce_dtype"), "column"]
    )
    echo = failure_cases["column"].isin(uncoercible) & ~failure_cases["check"].str.startswith(
        "coerce_dtype"
    )
    cases = failure_cases.loc[~echo].copy()
    missing = cases["check"] == "column_in_dataframe"
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"]
    cases.loc[missing, "check"] = "required column is missing"
    return cases


def _summarise_failures(failure_cases: pd.DataFrame) -> list[dict[str, Any]]:
    errors = []
    failure_cases = _relevant_failures(failure_cases)
    grouped = failure_cases.groupby(["column", "check"], dropna=False, sort=False)
    for (column, check), cases in grouped:
        examples = [
            {
                # file line: the header is line 1, the first data row line 2
                "line": None if pd.isna(index) else int(index) + 2,
                "value": None if pd.isna(value) else str(value),
            }
            for index, value in zip(
                cases["index"].head(EXAMPLES_PER_RULE),
                cases["failure_case"].head(EXAMPLES_PER_RULE),
                strict=True,
            )
        ]
        errors.append(
            {
                "column": None if pd.isna(column) else str(column),
                "rule": str(check),
                "n_failures": len(cases),
                "examples": examples,
            }
        )
    return errors


def _describe_errors(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        if error["rule"] == "required column is missing":
            parts.append(f"required column {error['column']!r} is missing")
            continue
        if not error["column"]:
            parts.append(f"the table broke the rule {error['rule']!r}")
            continue
        if all(e["line"] is None for e in error["examples"]):  # a rule about the whole column
            parts.append(f"column {error['column']!r} broke the rule {error['rule']!r}")
            continue
        shown = ", ".join(
            f"line {e['line']}: {e['value']!r}" if e["line"] else repr(e["value"])
            for e in error["examples"]
        )
        parts.append(
            f"column {error['column']!r} broke {error['rule']} "
            f"in {error['n_failures']} row(s) ({shown})"
        )
    return "; ".join(parts)


def validate_frame(raw_frame: pd.DataFrame, volume: Volume = Volume()) -> pd.DataFrame:
    """The frame with contract types, or ``DataValidationError`` listing every broken rule."""
    try:
        frame = build_schema(volume).validate(raw_frame, lazy=True)
    except SchemaErrors as exc:
        errors = _summarise_failures(exc.failure_cases)
        raise DataValidationError(
            f"data validation failed: {_describe_errors(errors)}", {"errors": errors}
        ) from exc
    return frame.loc[:, list(COLUMNS)].reset_index(drop=True)


def validate(
    data_version: str, lake: Lake, settings: Settings, *, accept_drift: bool = False
) -> ValidationResult:
    """Validate a data version in the lake; save the report; stop on errors or large drift."""
    data_version = resolve_data_version(data_version, lake)
    if not lake.exists(raw_key(data_version)):
        raise NotFoundError(f"no raw data for version {data_version} in the lake; ingest it first")
    report: dict[str, Any] = {
        "data_version": data_version,
        "validated_at": datetime.now(UTC).isoformat(),
        "passed": False,
        "errors": [],
        "drift": [],
    }
    key = report_key(data_version)
    try:
        raw_frame = parse_csv(lake.read_bytes(raw_key(data_version)))
        report["extra_columns"] = sorted(set(raw_frame.columns) - set(COLUMNS))
        frame = validate_frame(raw_frame, Volume.from_settings(settings))
    except DataValidationError as exc:
        report["errors"] = exc.report.get("errors") or [
            {"column": None, "rule": "parse", "n_failures": 1, "examples": [], "message": str(exc)}
        ]
        write_json(lake, key, report)
        exc.report = report
        raise

    profile = compute_profile(frame)
    report |= {"n_rows": len(frame), "profile": profile}
    reference = (
        read_json(lake, REFERENCE_PROFILE_KEY) if lake.exists(REFERENCE_PROFILE_KEY) else None
    )
    findings = compare_profiles(profile, reference["profile"], settings) if reference else []
    report["drift"] = findings_as_dicts(findings)
    if findings and not accept_drift:
        write_json(lake, key, report)
        moved = "; ".join(f.describe() for f in findings)
        raise DataDriftError(
            f"the data moved away from the accepted reference "
            f"{reference['data_version'][:12]}: {moved}. If the change is deliberate, "
            "re-run with --accept-drift to make this data the new reference.",
            report,
        )
    if reference is None or findings:
        write_json(lake, REFERENCE_PROFILE_KEY, {"data_version": data_version, "profile": profile})
        reference = {"data_version": data_version}
        log.info("data version %s is now the drift reference", data_version[:12])

    write_frame(lake, validated_key(data_version), frame)
    report |= {"passed": True, "reference_version": reference["data_version"]}
    write_json(lake, key, report)
    log.info("validated %s rows of %s", len(frame), data_version[:12])
    return ValidationResult(
        data_version=data_version,
        report_key=key,
        validated_key=validated_key(data_version),
        n_rows=len(frame),
        reference_version=reference["data_version"],
        drift_accepted=report["drift"],
    )
