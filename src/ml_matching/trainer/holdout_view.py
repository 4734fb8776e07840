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

from ml_matching.contract.holdout import HOLDOUT, LIVE, Holdout
from ml_matching.trainer import observations as seen
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
    # A holdout row live served (its frozen version failed) is the holdout's unit, not its model: on
    # neither side. A live row is live's whatever served it, an experiment's fallback included.
    served = [r[:6] for r in rows if not (r[6] and r[0] == HOLDOUT)]
    own = {name: seen.matured(served, name, h.horizon_days) for name in (HOLDOUT, LIVE)}
    sides = [_side(name, [r for r in rows if r[0] == name], own[name]) for name in (HOLDOUT, LIVE)]
    held, live = own[HOLDOUT], own[LIVE]
    gain = [
        Gain(
            metric,
            lower,
            split_cs(unit_values(metric, held.p, held.y), unit_values(metric, live.p, live.y), ALPHA),
        )
        for metric, lower in LOWER_IS_BETTER.items()
    ]
    return HoldoutView(
        h.id, "running" if record.ended_at is None else "stopped", h.version, h.weight, h.salt,
        h.horizon_days, h.created_at, sides, gain, at, record.ended_at,
    )  # fmt: skip


#: One ledger row of the holdout: its side, then as :data:`~.observations.LedgerLook` reads it,
#: then whether live served it because the frozen version failed.
_Row = tuple[str, float, int | None, int, str, str | None, int]


def _rows(tx: Tx, h: Holdout, at: str) -> list[_Row]:
    cutoff = horizon_cutoff(at, h.horizon_days)
    return tx.execute(
        "SELECT CASE WHEN p.arm = ? AND p.experiment IS NULL THEN ? ELSE ? END, p.probability, o.outcome, "
        "p.at < ?, p.at, o.received_at, p.fallback "
        "FROM predictions p LEFT JOIN outcomes o ON o.prediction_id = p.id AND o.received_at <= ? "
        "WHERE p.holdout = ? AND p.received_at <= ? ORDER BY p.id",
        HOLDOUT, HOLDOUT, LIVE, cutoff, at, h.id, at,
    ).fetchall()  # fmt: skip


def _side(name: str, rows: list[_Row], own: seen.Matured) -> SideStats:
    return SideStats(
        side=name,
        rows=len(rows),
        fallback=sum(1 for r in rows if r[6]),
        outcomes=sum(1 for r in rows if r[2] is not None),
        matured=own.n,
        metrics=arm_metrics(own.p, own.y) if own.n else None,
    )
