"""The promotion gate: a new version becomes ACTIVE only if it is not worse than the one serving.

Candidate and champion are scored with onnxruntime from their ONNX bytes (so any algorithm, and any
older version, can be the champion) on the same rows; the candidate is promoted when

    candidate ROC-AUC >= champion ROC-AUC - tolerance

and its parity gate passed (a candidate exists only once it did). An empty store's first version is
promoted.

Both are scored on rows neither trained on, when there are such rows (``--gate-data``, the
trainer's evaluation outcomes). Without them the candidate is judged on its own held-out split,
which is a fresh split of data the champion most likely learned from: a forest scored on its own
training rows looks far better than it is (ROC-AUC 0.97 where the best any model can do is 0.92),
and every good retrain was refused. So then each side is judged on its own held-out rows: the
candidate on these, the champion by the held-out ROC-AUC its sidecar recorded when it was trained.

A candidate that loses to its own logistic baseline on its rows gets a warning, not a refusal: on
nearly linear data a forest can trail a line without having learned noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from ml_matching.contract import GateDecision, MLMatchingError, Sidecar, load_version
from ml_matching.training.estimators import weighted_proba

Proba = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class EvalRows:
    """The rows a decision is made on: features in the candidate's column order, 0/1 outcomes.
    ``independent``: no model was trained on them (False for a training's own held-out split, which
    the champion may have been trained on)."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    source: str
    independent: bool = True

    @property
    def usable(self) -> bool:
        """Both outcomes present (ROC-AUC needs them)."""
        return 0 < int(self.y.sum()) < len(self.y)


def judge(
    candidate: Sidecar,
    candidate_proba: Proba,
    champion: str | None,
    root: Path,
    rows: EvalRows,
    tolerance: float,
) -> GateDecision:
    """Decide whether ``candidate`` may replace ``champion`` (a version of ``root``, or None)."""
    x32 = rows.x.astype(np.float32)
    mine = _auc(rows.y, candidate_proba(x32))
    base = candidate.baseline
    weights = np.array([base.coefficients[f.name] for f in candidate.features])
    line = _auc(rows.y, weighted_proba(base.intercept, weights, x32.astype(np.float64)))
    warnings = _warnings(mine, line)

    def decide(promoted: bool, reason: str, theirs: float | None = None) -> GateDecision:
        return GateDecision(
            promoted=promoted,
            reason=reason,
            champion=champion,
            candidate_roc_auc=mine,
            champion_roc_auc=theirs,
            baseline_roc_auc=line,
            rows=len(rows.y),
            positives=int(rows.y.sum()),
            rows_source=rows.source,
            tolerance=tolerance,
            parity_max_abs_diff=candidate.parity.max_abs_diff,
            warnings=warnings,
        )

    if champion is None:
        return decide(
            True,
            f"the first version of the store (parity passed, max |dp| {candidate.parity.max_abs_diff:.1e})",
        )
    try:
        model = load_version(root, champion)
    except MLMatchingError as exc:  # a champion that cannot be verified must not block its replacement
        return decide(True, f"the champion {champion} cannot be scored ({exc}); the candidate replaces it")
    if model.feature_set.names != tuple(f.name for f in candidate.features):
        return decide(True, f"the champion {champion} scores other features; the candidate replaces it")
    if rows.independent:
        theirs = _auc(rows.y, model.predict_proba(x32).astype(np.float64))
        where = f"on {len(rows.y)} {rows.source}"
    else:
        theirs = model.sidecar.metrics.holdout.roc_auc
        where = (
            f"(the candidate on {len(rows.y)} {rows.source}, the champion on its own held-out rows, as "
            "its sidecar records: it may have been trained on these)"
        )
    if mine >= theirs - tolerance:
        return decide(
            True,
            f"ROC-AUC {mine:.4f} >= {theirs:.4f} - {tolerance:g} of the champion {champion} {where}",
            theirs,
        )
    return decide(
        False, f"ROC-AUC {mine:.4f} < {theirs:.4f} - {tolerance:g} of the champion {champion} {where}", theirs
    )


def judge_published(
    root: Path, version: str, against: str | None, rows: EvalRows, tolerance: float
) -> GateDecision:
    """The decision for a version already in the store (verified first) against ``against``."""
    model = load_version(root, version)

    def proba(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return model.predict_proba(x).astype(np.float64)

    return judge(model.sidecar, proba, against, root, rows, tolerance)


def _auc(y: npt.NDArray[np.int64], p: npt.NDArray[np.float64]) -> float:
    return float(roc_auc_score(y, p))


def _warnings(mine: float, line: float) -> tuple[str, ...]:
    if line <= mine:
        return ()
    return (
        f"the candidate's logistic baseline scores ROC-AUC {line:.4f} on the same rows, above its "
        f"{mine:.4f}: the data may be nearly linear, or the model learned noise",
    )
