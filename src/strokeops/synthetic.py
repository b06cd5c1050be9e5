"""Generated patients with the data set's schema, for tests and benchmarks.

The rows are made up, not sampled from the real file: a plausible joint distribution with a
stroke risk that rises with age, hypertension, heart disease and glucose, at about the real
prevalence (5%), with about 4% of bmi missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from strokeops.schema import CATEGORIES, COLUMNS


def generate_patients(n_rows: int, *, seed: int = 0, prevalence: float = 0.05) -> pd.DataFrame:
    """A frame of ``n_rows`` patients in the raw file's column order and types."""
    rng = np.random.default_rng(seed)
    age = np.round(np.clip(rng.normal(43, 22, n_rows), 0.08, 82), 2)
    adult = age >= 18
    hypertension = (rng.random(n_rows) < np.where(age > 50, 0.2, 0.03)).astype(int)
    heart_disease = (rng.random(n_rows) < np.where(age > 60, 0.12, 0.02)).astype(int)
    glucose = np.round(np.clip(rng.lognormal(4.6, 0.3, n_rows) + 20 * hypertension, 55, 272), 2)
    bmi = np.round(np.clip(rng.normal(np.where(adult, 30, 20), 7, n_rows), 10.3, 97.6), 1)
    bmi[rng.random(n_rows) < 0.04] = np.nan
    work_type = np.where(
        adult,
        rng.choice(
            ["Private", "Self-employed", "Govt_job", "Never_worked"],
            n_rows,
            p=[0.65, 0.2, 0.14, 0.01],
        ),
        "children",
    )
    logit = -7.8 + 0.075 * age + 0.5 * hypertension + 0.4 * heart_disease + 0.005 * glucose
    risk = 1 / (1 + np.exp(-(logit + np.log(prevalence / 0.05))))
    frame = pd.DataFrame(
        {
            "id": rng.permutation(np.arange(1, n_rows * 20, 20))[:n_rows] if n_rows else [],
            "gender": rng.choice(["Female", "Male"], n_rows, p=[0.59, 0.41]),
            "age": age,
            "hypertension": hypertension,
            "heart_disease": heart_disease,
            "ever_married": np.where(adult & (rng.random(n_rows) < 0.8), "Yes", "No"),
            "work_type": work_type,
            "Residence_type": rng.choice(CATEGORIES["Residence_type"], n_rows),
            "avg_glucose_level": glucose,
            "bmi": bmi,
            "smoking_status": rng.choice(
                CATEGORIES["smoking_status"], n_rows, p=[0.3, 0.17, 0.37, 0.16]
            ),
            "stroke": (rng.random(n_rows) < risk).astype(int),
        }
    )
    return frame.loc[:, list(COLUMNS)]


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV bytes as the data set circulates: CRLF line ends, ``N/A`` for missing bmi."""
    return frame.to_csv(index=False, na_rep="N/A", lineterminator="\r\n").encode()
