"""Scoring from the compiled form of a model Pipeline, with numpy only.

The compiled form (built at registration by ``strokeops.compile``) is a JSON spec of the exact
preprocessing (imputation medians, missing indicators, scaling, one-hot categories) and, for
calibrated linear models, the coefficients and sigmoid calibrators. Scoring a row is then a
few dot products instead of a pandas ColumnTransformer call: about a thousand times faster, and
checked against the Pipeline to 1e-6 before a model may serve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SPEC_FORMAT = 1
LINEAR = "calibrated_linear"
ESTIMATOR = "estimator"


class _Codes(dict[Any, int]):
    """Category -> one-hot position; -1 for a category not seen in training (no insertion,
    unlike a defaultdict: requests must not grow it)."""

    def __missing__(self, key: Any) -> int:
        return -1


@dataclass(frozen=True, slots=True)
class _FoldedMember:
    """A calibrated linear member in the raw values' terms (see ``Scorer._fold``)."""

    base: float
    numeric: list[float]
    indicators: list[float]
    categories: list[tuple[str, dict[str, float]]]
    binary: list[tuple[str, float]]
    a: float
    b: float


class Scorer:
    """Encodes patients as the Pipeline's preprocessing would and returns P(stroke)."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        *,
        estimator_proba: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if spec.get("format") != SPEC_FORMAT:
            raise ValueError(f"unsupported compiled model format {spec.get('format')!r}")
        encoding = spec["encoding"]
        self.spec = spec
        self.numeric: list[str] = encoding["numeric"]
        self.medians = np.asarray(encoding["medians"], dtype=float)
        self.indicators: list[int] = [self.numeric.index(c) for c in encoding["indicators"]]
        scale = encoding.get("scale")
        n_scaled = len(self.numeric) + len(self.indicators)
        self.scale_mean = np.asarray(scale["mean"]) if scale else np.zeros(n_scaled)
        self.scale_scale = np.asarray(scale["scale"]) if scale else np.ones(n_scaled)
        self._medians = self.medians.tolist()
        self._mean, self._scale = self.scale_mean.tolist(), self.scale_scale.tolist()
        self.categories: dict[str, list[str]] = encoding["categorical"]
        self._category_index = {
            name: _Codes((category, i) for i, category in enumerate(categories))
            for name, categories in self.categories.items()
        }
        self.binary: list[str] = encoding["binary"]
        self.feature_names: list[str] = spec["feature_names"]
        self.source_features: list[str] = spec["source_features"]
        # which source feature each encoded column comes from, for explanations
        self._source_index = np.array(
            [
                next(i for i, f in enumerate(self.source_features) if _belongs(name, f))
                for name in self.feature_names
            ]
        )
        model = spec["model"]
        self.kind = model["kind"]
        if self.kind == LINEAR:
            members = model["members"]
            self.coef = np.array([m["coef"] for m in members]).T  # features x members
            self.intercept = np.array([m["intercept"] for m in members])
            self.cal_a = np.array([m["a"] for m in members])
            self.cal_b = np.array([m["b"] for m in members])
            self._members = [(m["coef"], m["intercept"], m["a"], m["b"]) for m in members]
            self._folded = [self._fold(m["coef"], m["intercept"], m["a"], m["b"]) for m in members]
        elif self.kind == ESTIMATOR:
            if estimator_proba is None:
                raise ValueError("an 'estimator' compiled model needs its fitted estimator")
            self._estimator_proba = estimator_proba
        else:
            raise ValueError(f"unknown compiled model kind {self.kind!r}")

    def _fold(self, coef: list[float], intercept: float, a: float, b: float) -> _FoldedMember:
        """One calibrated member with its encoding folded into per-value weights.

        Scaling moves into the numeric weights and the intercept, and each one-hot block
        becomes a table from category to its coefficient, so that scoring a row needs no
        encoded vector at all (see ``probability_of``).
        """
        n_numeric, n_scaled = len(self.numeric), len(self.numeric) + len(self.indicators)
        scaled = [c / s for c, s in zip(coef[:n_scaled], self._scale, strict=True)]
        base = intercept - sum(w * m for w, m in zip(scaled, self._mean, strict=True))
        tables: list[tuple[str, dict[str, float]]] = []
        position = n_scaled
        for name, categories in self.categories.items():
            weights = coef[position : position + len(categories)]
            tables.append((name, dict(zip(categories, weights, strict=True))))
            position += len(categories)
        binary = list(zip(self.binary, coef[position:], strict=True))
        return _FoldedMember(base, scaled[:n_numeric], scaled[n_numeric:], tables, binary, a, b)

    def probability_of(self, row: Mapping[str, Any]) -> float:
        """P(stroke) for one patient keyed by the data set's column names: the single-request
        path. For a linear model, a few lookups and multiply-adds per member (the same sums as
        ``probability(encode(...))`` in another order, equal to about 1e-15)."""
        if self.kind != LINEAR:
            return self.probability_one(self.encode_one(row))
        filled: list[float] = []
        missing: list[bool] = []
        for name, median in zip(self.numeric, self._medians, strict=True):
            value = row.get(name)
            is_missing = value is None or value != value  # NaN != NaN
            missing.append(is_missing)
            filled.append(median if is_missing else float(value))
        flags = [missing[i] for i in self.indicators]
        total = 0.0
        for member in self._folded:
            decision = member.base
            for weight, value in zip(member.numeric, filled, strict=True):
                decision += weight * value
            for weight, flag in zip(member.indicators, flags, strict=True):
                if flag:
                    decision += weight
            for name, table in member.categories:
                decision += table.get(row.get(name), 0.0)  # unknown: all zeros, as one-hot
            for name, weight in member.binary:
                decision += weight * float(row[name])
            total += 1.0 / (1.0 + math.exp(member.a * decision + member.b))
        return total / len(self._folded)

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The preprocessed matrix for rows keyed by the data set's column names."""
        columns = {name: [row.get(name) for row in rows] for name in self.source_features}
        return self.encode_columns(columns, len(rows))

    def encode_one(self, row: Mapping[str, Any]) -> list[float]:
        """One patient's encoded vector, in plain Python: the single-request fast path."""
        encoded: list[float] = []
        missing: list[bool] = []
        for name, median in zip(self.numeric, self._medians, strict=True):
            value = row.get(name)
            is_missing = value is None or value != value  # NaN != NaN
            missing.append(is_missing)
            encoded.append(median if is_missing else float(value))
        encoded.extend(1.0 if missing[i] else 0.0 for i in self.indicators)
        encoded = [(v - m) / s for v, m, s in zip(encoded, self._mean, self._scale, strict=True)]
        for name, categories in self.categories.items():
            value = row.get(name)
            encoded.extend(1.0 if value == category else 0.0 for category in categories)
        encoded.extend(float(row[name]) for name in self.binary)
        return encoded

    def probability_one(self, encoded: list[float]) -> float:
        """P(stroke) for one encoded vector (see ``encode_one``)."""
        if self.kind == ESTIMATOR:
            return float(self._estimator_proba(np.asarray([encoded]))[0])
        total = 0.0
        for coef, intercept, a, b in self._members:
            decision = intercept + sum(c * x for c, x in zip(coef, encoded, strict=True))
            total += 1.0 / (1.0 + math.exp(a * decision + b))
        return total / len(self._members)

    def encode_columns(self, columns: Mapping[str, Sequence[Any]], n_rows: int) -> np.ndarray:
        """The preprocessed matrix from column sequences (a dict of lists, or a DataFrame)."""
        numeric = np.empty((n_rows, len(self.numeric)))
        for j, name in enumerate(self.numeric):
            numeric[:, j] = np.asarray(columns[name], dtype=float)  # None becomes NaN
        missing = np.isnan(numeric)
        imputed = np.where(missing, self.medians, numeric)
        scaled = np.hstack([imputed, missing[:, self.indicators].astype(float)])
        scaled = (scaled - self.scale_mean) / self.scale_scale
        parts = [scaled]
        for name, index in self._category_index.items():
            # one dict lookup per value; an unknown category is all zeros, as in OneHotEncoder
            codes = np.fromiter(map(index.__getitem__, columns[name]), np.intp, n_rows)
            onehot = np.zeros((n_rows, len(index)))
            known = np.flatnonzero(codes >= 0)
            onehot[known, codes[known]] = 1.0
            parts.append(onehot)
        parts.append(
            np.column_stack([np.asarray(columns[name], dtype=float) for name in self.binary])
        )
        return np.hstack(parts)

    def probability(self, encoded: np.ndarray) -> np.ndarray:
        """P(stroke) for each encoded row."""
        if self.kind == ESTIMATOR:
            return self._estimator_proba(encoded)
        decision = encoded @ self.coef + self.intercept
        return np.mean(1.0 / (1.0 + np.exp(self.cal_a * decision + self.cal_b)), axis=1)

    def contributions(self, encoded_row: np.ndarray) -> dict[str, float] | None:
        """Each source feature's exact contribution to the model's averaged calibrated log-odds,
        relative to an average training patient; None where the model is not linear."""
        if self.kind != LINEAR:
            return None
        weights = -(self.coef * self.cal_a).mean(axis=1)
        baseline = np.asarray(self.spec["baseline"], dtype=float)
        totals = np.bincount(
            self._source_index,
            weights=weights * (encoded_row - baseline),
            minlength=len(self.source_features),
        )
        return {
            name: float(value) for name, value in zip(self.source_features, totals, strict=True)
        }


def _belongs(encoded_name: str, feature: str) -> bool:
    return encoded_name in (feature, f"missingindicator_{feature}") or encoded_name.startswith(
        f"{feature}_"
    )
