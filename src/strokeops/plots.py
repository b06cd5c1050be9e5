"""Evaluation plots as matplotlib figures (Agg backend: no screen needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
)


def _figure() -> tuple[Figure, plt.Axes]:
    figure, axes = plt.subplots(figsize=(5, 4.5), layout="constrained")
    return figure, axes


def roc_figure(y_true: np.ndarray, probability: np.ndarray, title: str) -> Figure:
    figure, axes = _figure()
    RocCurveDisplay.from_predictions(y_true, probability, ax=axes, plot_chance_level=True)
    axes.set_title(f"ROC: {title}")
    return figure


def pr_figure(y_true: np.ndarray, probability: np.ndarray, title: str) -> Figure:
    figure, axes = _figure()
    PrecisionRecallDisplay.from_predictions(y_true, probability, ax=axes, plot_chance_level=True)
    axes.set_title(f"Precision-recall: {title}")
    return figure


def calibration_figure(y_true: np.ndarray, probability: np.ndarray, title: str) -> Figure:
    figure, axes = _figure()
    CalibrationDisplay.from_predictions(
        y_true, probability, n_bins=10, strategy="quantile", ax=axes
    )
    axes.set_title(f"Calibration: {title}")
    return figure


def confusion_figure(y_true: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    figure, axes = _figure()
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        predicted,
        labels=[0, 1],
        display_labels=["no stroke", "stroke"],
        ax=axes,
        colorbar=False,
    )
    axes.set_title(f"Confusion at threshold: {title}")
    return figure


def importance_figure(importance: pd.Series, title: str) -> Figure:
    """Horizontal bars of mean permutation importance (drop in ROC-AUC), largest on top."""
    figure, axes = _figure()
    importance.sort_values().plot.barh(ax=axes)
    axes.set_xlabel("mean drop in ROC-AUC when shuffled")
    axes.set_title(f"Permutation importance: {title}")
    return figure
