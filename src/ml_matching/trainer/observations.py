"""What the controller sees of an experiment at a moment ``at``: every query reads only what the
trainer had received by then (``received_at <= at``), in a fixed order, so the same question asked
later of the same database gets the same answer bit for bit (``experiment replay``).

A prediction is *matured* when its outcome arrived by ``at``, or when ``horizonDays`` have passed
since it was made without one: it then counts as not a success (the same rule for every arm).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ml_matching.contract.assignment import BUCKETS, CONTROL
from ml_matching.contract.experiment import Experiment, instant
from ml_matching.trainer.database import Tx

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Matured:
    """Matured predictions of one arm, in prediction-id order: probability served, outcome (0/1)."""

    p: Floats
    y: Floats
    made: tuple[str, ...]  # when each prediction was made
    matured_at: tuple[str, ...]  # when its outcome arrived, or its horizon passed

    @property
    def n(self) -> int:
        return len(self.y)

    def made_since(self, since: str) -> int:
        return sum(1 for t in self.made if t >= since)


@dataclass(frozen=True)
class Paired:
    """Matured predictions scored by both control (served) and the candidate (shadow)."""

    served: Floats
    shadow: Floats
    y: Floats


@dataclass(frozen=True)
class Operations:
    """The candidate's own rows in the guardrail window: how many, how many failed, p99 ms."""

    rows: int
    errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.rows if self.rows else 0.0


def horizon_cutoff(at: str, horizon_days: float) -> str:
    """Predictions made before this time are matured, outcome or not."""
    return instant(dt.datetime.fromisoformat(at.replace("Z", "+00:00")) - dt.timedelta(days=horizon_days))


def split(
    tx: Tx, experiment: Experiment, arm: str, since: str, at: str, weight: int | None = None
) -> tuple[Matured, Matured]:
    """Matured predictions of control and of candidate ``arm`` made since ``since`` (the arm's own
    version serving: fallback rows are not the candidate's); with ``weight``, only those made while
    ``arm`` served that many basis points. The weight each row records keeps out the rows a runtime
    served under the previous step's split before it followed the new one, so that the arms are
    compared under one allocation only."""
    cutoff = horizon_cutoff(at, experiment.horizon_days)
    params: list[object]
    if weight is None:
        arms, params = "p.arm IN (?, ?)", [CONTROL, arm]
    else:
        arms, params = "((p.arm = ? AND p.weight = ?) OR (p.arm = ? AND p.weight = ?))", [
            CONTROL, BUCKETS - weight, arm, weight,
        ]  # fmt: skip
    rows = tx.execute(
        "SELECT p.arm, p.probability, o.outcome, p.at < ?, p.at, o.received_at FROM predictions p "
        "LEFT JOIN outcomes o ON o.prediction_id = p.id AND o.received_at <= ? "
        f"WHERE p.experiment = ? AND p.received_at <= ? AND p.at >= ? AND p.fallback = 0 AND {arms} "
        "ORDER BY p.id",
        cutoff, at, experiment.id, at, since, *params,
    ).fetchall()  # fmt: skip
    days = experiment.horizon_days
    return matured(rows, CONTROL, days), matured(rows, arm, days)


#: A ledger row as :func:`matured` reads it: arm, probability, outcome (None: none yet), whether its
#: horizon has passed, when it was made, when its outcome arrived.
LedgerLook = tuple[str, float, int | None, int, str, str | None]


def matured(rows: list[LedgerLook], arm: str, days: float) -> Matured:
    """The matured rows of ``arm`` (an outcome arrived, or the horizon passed: then not a success)."""
    kept = [
        (p, 0 if y is None else y, t, received or shifted(t, days * 86_400))
        for a, p, y, expired, t, received in rows
        if a == arm and (y is not None or expired)
    ]
    p = np.array([k[0] for k in kept], dtype=np.float64)
    y = np.array([k[1] for k in kept], dtype=np.float64)
    return Matured(p, y, tuple(k[2] for k in kept), tuple(k[3] for k in kept))


def paired(tx: Tx, experiment: Experiment, version: str, since: str, at: str) -> Paired:
    """Matured predictions made since ``since`` that shadow ``version`` scored too."""
    cutoff = horizon_cutoff(at, experiment.horizon_days)
    rows = tx.execute(
        "SELECT p.probability, s.probability, o.outcome, p.at < ? FROM predictions p "
        "JOIN shadow_scores s ON s.prediction_id = p.id AND s.version = ? AND s.probability IS NOT NULL "
        "LEFT JOIN outcomes o ON o.prediction_id = p.id AND o.received_at <= ? "
        "WHERE p.experiment = ? AND p.received_at <= ? AND p.at >= ? ORDER BY p.id",
        cutoff, version, at, experiment.id, at, since,
    ).fetchall()  # fmt: skip
    kept = [(a, b, 0 if y is None else y) for a, b, y, expired in rows if y is not None or expired]
    served, shadow, y = (
        (np.array(c, dtype=np.float64) for c in zip(*kept, strict=True)) if kept else (_empty(),) * 3
    )
    return Paired(served, shadow, y)


def units(tx: Tx, experiment: Experiment, at: str) -> dict[str, int]:
    """Distinct units assigned to each arm under the weights now in force, received by ``at``."""
    weights = design(experiment)
    found: dict[str, int] = {}
    for arm, weight, n in tx.execute(
        "SELECT arm, weight, COUNT(DISTINCT unit) FROM predictions WHERE experiment = ? AND received_at <= ? "
        "AND arm IS NOT NULL GROUP BY arm, weight ORDER BY arm",
        experiment.id,
        at,
    ).fetchall():
        if arm in weights and weight == weights[arm]:
            found[arm] = found.get(arm, 0) + int(n)
    return found


def design(experiment: Experiment) -> dict[str, int]:
    """Each arm's weight now: control gets what the candidates do not."""
    return {CONTROL: BUCKETS - sum(experiment.weights), **{c.arm: c.weight for c in experiment.candidates}}


def operations(tx: Tx, experiment: Experiment, arm: str, since: str, at: str) -> Operations:
    """The candidate arm's rows received in (since, at]: errors (its version raised or was refused),
    and the p99 of the scoring time of the rows its own version served."""
    rows = tx.execute(
        "SELECT error, ms, fallback FROM predictions WHERE experiment = ? AND arm = ? "
        "AND received_at > ? AND received_at <= ? ORDER BY id",
        experiment.id, arm, since, at,
    ).fetchall()  # fmt: skip
    errors = sum(1 for error, _, _ in rows if error is not None)
    ms = np.array([m for _, m, fallback in rows if m is not None and not fallback], dtype=np.float64)
    p99 = float(np.quantile(ms, 0.99, method="higher")) if len(ms) else None
    return Operations(len(rows), errors, p99)


def seconds_between(start: str, end: str) -> float:
    return (_instant(end) - _instant(start)).total_seconds()


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def shifted(at: str, seconds: float) -> str:
    """``at`` moved by ``seconds`` (negative: earlier), in the ledger's time format."""
    return instant(dt.datetime.fromisoformat(at.replace("Z", "+00:00")) + dt.timedelta(seconds=seconds))


def _empty() -> Floats:
    return np.zeros(0, dtype=np.float64)
