"""What ``GET /holdouts/{id}`` shows: what retraining has gained over the frozen version.

Two sides, from the ledger rows the holdout placed (``predictions.holdout``):

- ``holdout``: the rows its frozen version served (``arm`` ``holdout``, outside any experiment);
- ``live``: every other row of a keyed unit, whatever served it (ACTIVE, an experiment's control,
  candidate or a fallback): what the learning loop gives the other units.

A prediction is *matured* when its outcome arrived, or when ``horizonDays`` passed without one (it
then counts as not a success), as for experiments. Rows where the frozen version failed and live
served instead (``fallback``) are on neither side: they are the holdout's units, not its model.

``gain`` is, per metric, a confidence sequence for Δ = live − holdout over the matured rows
(:func:`~ml_matching.trainer.sequential.split_cs`, pooled variance: the holdout is the small arm),
valid however often it is read. A negative Δ of log loss or Brier, or a positive Δ of success rate,
is what retraining gained. It makes no decision: nothing acts on it.
"""

from __future__ import annotations

import msgspec
import numpy as np

from ml_matching.contract.holdout import HOLDOUT, LIVE, Holdout
from ml_matching.trainer.database import Tx
from ml_matching.trainer.holdouts import HoldoutRecord
from ml_matching.trainer.observations import horizon_cutoff
from ml_matching.trainer.online import LOWER_IS_BETTER, ArmMetrics, arm_metrics, unit_values
from ml_matching.trainer.sequential import ConfidenceSequence, split_cs

#: The level of the confidence sequences shown.
ALPHA = 0.05


class SideStats(msgspec.Struct, rename="camel"):
    side: str
    rows: int = 0
    fallback: int = 0
    outcomes: int = 0
    matured: int = 0
    metrics: ArmMetrics | None = None


class Gain(msgspec.Struct, rename="camel"):
    """Δ = live − holdout of one metric; ``lowerIsBetter`` says which sign is a gain."""

    metric: str
    lower_is_better: bool
    cs: ConfidenceSequence


class HoldoutView(msgspec.Struct, rename="camel", omit_defaults=True):
    id: str
    state: str
    version: str
    weight: int
    salt: str
    horizon_days: float
    created_at: str
    sides: list[SideStats]
    gain: list[Gain]
    at: str
    ended_at: str | None = None


def holdout_view(tx: Tx, record: HoldoutRecord, at: str) -> HoldoutView:
    """The holdout's two sides and the gain, from what the trainer had received by ``at``."""
    h = record.holdout
    rows = _rows(tx, h, at)
    sides = [_side(name, rows[name]) for name in (HOLDOUT, LIVE)]
    held, live = (_matured(rows[name]) for name in (HOLDOUT, LIVE))
    gain = [
        Gain(metric, lower, split_cs(unit_values(metric, *held), unit_values(metric, *live), ALPHA))
        for metric, lower in LOWER_IS_BETTER.items()
    ]
    return HoldoutView(
        h.id, "running" if record.ended_at is None else "stopped", h.version, h.weight, h.salt,
        h.horizon_days, h.created_at, sides, gain, at, record.ended_at,
    )  # fmt: skip


#: One ledger row of the holdout: probability, outcome (None: none yet), expired, fallback.
_Row = tuple[float, int | None, bool, bool]


def _rows(tx: Tx, h: Holdout, at: str) -> dict[str, list[_Row]]:
    cutoff = horizon_cutoff(at, h.horizon_days)
    found = tx.execute(
        "SELECT p.arm = ? AND p.experiment IS NULL, p.probability, o.outcome, p.at < ?, p.fallback "
        "FROM predictions p LEFT JOIN outcomes o ON o.prediction_id = p.id AND o.received_at <= ? "
        "WHERE p.holdout = ? AND p.received_at <= ? ORDER BY p.id",
        HOLDOUT, cutoff, at, h.id, at,
    ).fetchall()  # fmt: skip
    out: dict[str, list[_Row]] = {HOLDOUT: [], LIVE: []}
    for held, p, y, expired, fallback in found:
        out[HOLDOUT if held else LIVE].append((p, y, bool(expired), bool(fallback)))
    return out


def _matured(rows: list[_Row]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and outcomes of the matured rows the side's own version served."""
    kept = [(p, 0 if y is None else y) for p, y, old, fell in rows if not fell and (y is not None or old)]
    p = np.array([k[0] for k in kept], dtype=np.float64)
    y = np.array([k[1] for k in kept], dtype=np.float64)
    return p, y


def _side(name: str, rows: list[_Row]) -> SideStats:
    p, y = _matured(rows)
    return SideStats(
        side=name,
        rows=len(rows),
        fallback=sum(1 for r in rows if r[3]),
        outcomes=sum(1 for r in rows if r[1] is not None),
        matured=len(y),
        metrics=arm_metrics(p, y) if len(y) else None,
    )
