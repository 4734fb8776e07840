"""The model card's figures, as SVG (matplotlib's Figure, without pyplot: no display, no GUI toolkit).

Each function returns the bytes of one SVG. The same inputs give the same bytes: no date in the
metadata, a fixed hash salt for element ids, and text kept as text (the browser draws the fonts).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from ml_matching.contract import CrossValidation, Importance, TrainingData

STYLE: dict[Any, Any] = {
    "svg.hashsalt": "ml-matching",
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.grid": True,
}
MODEL, BASELINE, BEFORE = "#1f6feb", "#8b949e", "#d4a72c"
Vector = npt.NDArray[np.float64]


def subplots(*grid: int, figsize: tuple[float, float], **options: Any) -> tuple[Figure, Any]:
    """A figure and its axes, as ``pyplot.subplots`` makes them (the SVG bytes are the same), without
    pyplot: nothing keeps the figure once it is drawn (pyplot keeps each until it is closed, which a
    long-lived process such as the trainer would never do), and 0.4-0.7 s less CPU a card
    (``ml-matching card``, 3 runs each)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **options)


def svg(fig: Any, tight: bool = True) -> bytes:
    """The figure as SVG; ``tight`` crops it to what is drawn (which costs matplotlib a second draw)."""
    out = io.BytesIO()
    fig.savefig(out, format="svg", metadata={"Date": None}, **({"bbox_inches": "tight"} if tight else {}))
    return out.getvalue()


def roc(y: Vector, model: Vector, baseline: Vector) -> bytes:
    """The held-out ROC curve of the model and of its logistic baseline."""
    with matplotlib.rc_context(STYLE):
        fig, ax = subplots(figsize=(4.5, 4.2))
        for p, label, color in ((model, "model", MODEL), (baseline, "logistic baseline", BASELINE)):
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, color=color, label=f"{label} (AUC {roc_auc_score(y, p):.3f})")
        ax.plot([0, 1], [0, 1], color="#d0d7de", linestyle="--", linewidth=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held-out rows")
        ax.legend(loc="lower right")
        return svg(fig)


def reliability(y: Vector, before: Vector, after: Vector, bins: int, method: str) -> bytes:
    """Outcome rate against mean predicted probability per bin, without and with calibration."""
    with matplotlib.rc_context(STYLE):
        fig, ax = subplots(figsize=(4.5, 4.2))
        series = [(before, "uncalibrated", BEFORE)]
        if method != "none":
            series.append((after, f"calibrated ({method})", MODEL))
        for p, label, color in series:
            mean_p, rate = _binned(y, p, bins)
            ax.plot(mean_p, rate, marker="o", color=color, label=label)
        ax.plot([0, 1], [0, 1], color="#d0d7de", linestyle="--", linewidth=1, label="perfectly calibrated")
        ax.set(xlabel="mean predicted probability", ylabel="observed success rate", xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"Reliability, held-out rows ({bins} bins)")
        ax.legend(loc="upper left")
        return svg(fig)


def _binned(y: Vector, p: Vector, bins: int) -> tuple[Vector, Vector]:
    which = np.minimum((p * bins).astype(int), bins - 1)
    used = [b for b in range(bins) if (which == b).any()]
    mean_p = np.array([p[which == b].mean() for b in used])
    rate = np.array([y[which == b].mean() for b in used])
    return mean_p, rate


def importance(names: Sequence[str], imp: Importance) -> bytes:
    """Impurity and permutation importances side by side, features in model order."""
    with matplotlib.rc_context(STYLE):
        fig, (left, right) = subplots(1, 2, figsize=(8, 0.28 * len(names) + 1.2), sharey=True)
        ys = np.arange(len(names))[::-1]
        impurity = np.array([imp.impurity.get(n, 0.0) for n in names])
        total = impurity.sum()
        left.barh(ys, impurity / total if total > 0 else impurity, color=MODEL)
        left.set(yticks=ys, yticklabels=list(names), title="impurity (share of splits' gain)")
        perm = np.array([imp.permutation.get(n, 0.0) for n in names])
        err = np.array([imp.permutation_std.get(n, 0.0) for n in names])
        right.barh(ys, perm, xerr=err, color=BEFORE)
        right.set(title="permutation (ROC-AUC lost, held-out rows)")
        return svg(fig)


def folds(cv: CrossValidation) -> bytes:
    """ROC-AUC, accuracy and F1 of each cross-validation fold."""
    with matplotlib.rc_context(STYLE):
        fig, ax = subplots(figsize=(5, 3.2))
        x = np.arange(1, cv.folds + 1)
        for metric, marker in (("roc_auc", "o"), ("accuracy", "s"), ("f1", "^")):
            values = [getattr(m, metric) for m in cv.per_fold]
            ax.plot(x, values, marker=marker, label=f"{metric} (mean {getattr(cv.mean, metric):.3f})")
        ax.set(xlabel="fold", xticks=x, ylabel="score", title=f"{cv.folds}-fold cross-validation")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        return svg(fig)


def data(names: Sequence[str], training: TrainingData) -> bytes:
    """Each feature's training histogram (the bins the drift monitor compares against).

    Without ticks, the range in each title, on a fixed grid: every fit draws this figure, and with
    tick labels fitted by ``tight_layout`` and a tight crop its 19 axes took 0.45 s of CPU, against
    0.14 s so (of a small fit's 8-9 s).
    """
    cols = 4
    rows = -(-len(names) // cols)
    height = 1.3 * rows + 0.75  # inches: 0.65 above the grid for the figure's title, 0.1 below it
    grid = {
        "left": 0.02,
        "right": 0.98,
        "top": 1 - 0.65 / height,
        "bottom": 0.1 / height,
        "hspace": 0.75,
        "wspace": 0.08,
    }
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = subplots(rows, cols, figsize=(9, height), squeeze=False, gridspec_kw=grid)
        for ax, name in zip(axes.flat, names, strict=False):
            hist = training.features[name].histogram
            ax.stairs(hist.counts, hist.edges, fill=True, color=MODEL)  # one path, not a bar each
            ax.set_title(f"{name}\n{hist.edges[0]:g} to {hist.edges[-1]:g}", fontsize=_fitting(name))
            ax.set_xticks([])  # the range is in the title, and the shape is what matters
            ax.set_yticks([])
        for ax in list(axes.flat)[len(names) :]:
            ax.axis("off")
        fig.suptitle(
            f"Training data: {training.rows:,} rows, {training.positive_rate:.1%} successes "
            "(each feature's histogram, as the drift monitor bins it)",
            y=1 - 0.1 / height,  # 0.1 in from the top, however tall: clear of the first row's titles
        )
        return svg(fig, tight=False)


def _fitting(name: str) -> float:
    """A font size at which ``name`` fits a column of the grid (about 32 characters at 8 pt)."""
    return min(8.0, 8.0 * 32 / len(name))
