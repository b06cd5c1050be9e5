"""Features: the preprocessing that lives inside every model Pipeline.

``id`` and the target are never features. Missing bmi is imputed (with a missing-indicator,
since a missing measurement carries signal here); categories are one-hot encoded and unknown
categories at prediction time are ignored rather than failing.
"""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from strokeops.schema import BINARY, CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET


def build_preprocessor(*, scale: bool) -> ColumnTransformer:
    numeric_steps: list[tuple[str, object]] = [
        ("impute", SimpleImputer(strategy="median", add_indicator=True))
    ]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    return ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), list(NUMERIC_FEATURES)),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL_FEATURES),
            ),
            ("binary", "passthrough", list(BINARY)),
        ],
        verbose_feature_names_out=False,
    )


def feature_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns with plain numpy dtypes (object for categories).

    Plain dtypes matter: MLflow can silently drop a signature inferred from pandas' nullable
    or Arrow-backed string dtypes.
    """
    features = frame.loc[:, list(FEATURES)].copy()
    for col in CATEGORICAL_FEATURES:
        features[col] = features[col].astype(object)
    for col in BINARY:
        features[col] = features[col].astype("int64")
    for col in NUMERIC_FEATURES:
        features[col] = features[col].astype("float64")
    return features


def target(frame: pd.DataFrame) -> pd.Series:
    return frame[TARGET].astype("int64")
