"""Data profiles and the drift check against the last accepted reference profile."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from strokeops.config import Settings
from strokeops.schema import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class DriftFinding:
    """One statistic that moved beyond its limit."""

    statistic: str
    reference: float
    current: float
    limit: float

    def describe(self) -> str:
        return (
            f"{self.statistic}: {self.reference:.4g} -> {self.current:.4g} (limit {self.limit:.4g})"
        )


def compute_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """Row count, label prevalence, missing rates, category frequencies, numeric quantiles."""
    return {
        "n_rows": len(frame),
        "prevalence": float(frame[TARGET].mean()),
        "missing_rate": {col: float(frame[col].isna().mean()) for col in FEATURES},
        "category_frequency": {
            col: {str(k): float(v) for k, v in frame[col].value_counts(normalize=True).items()}
            for col in CATEGORICAL_FEATURES
        },
        "quantiles": {
            col: [float(q) for q in frame[col].quantile(list(QUANTILES))]
            for col in NUMERIC_FEATURES
        },
    }


def compare_profiles(
    current: dict[str, Any], reference: dict[str, Any], settings: Settings
) -> list[DriftFinding]:
    """Every statistic of ``current`` that moved beyond the configured limits."""
    findings: list[DriftFinding] = []
    ratio = current["n_rows"] / max(reference["n_rows"], 1)
    if not 1 / settings.drift_max_row_ratio <= ratio <= settings.drift_max_row_ratio:
        findings.append(
            DriftFinding(
                "row count",
                reference["n_rows"],
                current["n_rows"],
                settings.drift_max_row_ratio,
            )
        )
    if abs(current["prevalence"] - reference["prevalence"]) > settings.drift_max_prevalence_shift:
        findings.append(
            DriftFinding(
                f"{TARGET} prevalence",
                reference["prevalence"],
                current["prevalence"],
                settings.drift_max_prevalence_shift,
            )
        )
    for col, ref_rate in reference["missing_rate"].items():
        rate = current["missing_rate"].get(col, 0.0)
        if abs(rate - ref_rate) > settings.drift_max_missing_shift:
            findings.append(
                DriftFinding(
                    f"{col} missing rate", ref_rate, rate, settings.drift_max_missing_shift
                )
            )
    for col, ref_freq in reference["category_frequency"].items():
        freq = current["category_frequency"].get(col, {})
        for category in sorted(set(ref_freq) | set(freq)):
            before, after = ref_freq.get(category, 0.0), freq.get(category, 0.0)
            if abs(after - before) > settings.drift_max_category_shift:
                findings.append(
                    DriftFinding(
                        f"{col}={category} share", before, after, settings.drift_max_category_shift
                    )
                )
    for col, ref_q in reference["quantiles"].items():
        iqr = max(ref_q[3] - ref_q[1], 1e-9)
        for level, before, after in zip(QUANTILES, ref_q, current["quantiles"][col], strict=True):
            if abs(after - before) / iqr > settings.drift_max_quantile_shift:
                findings.append(
                    DriftFinding(
                        f"{col} q{int(level * 100)}",
                        before,
                        after,
                        settings.drift_max_quantile_shift * iqr,
                    )
                )
    return findings


def findings_as_dicts(findings: list[DriftFinding]) -> list[dict[str, Any]]:
    return [asdict(f) | {"message": f.describe()} for f in findings]
