"""What ``GET /experiments/{id}`` shows: the experiment, and per arm what the ledger and outcomes say.

Counts come from the ledger, so they are what reached the trainer (a runtime's dropped ledger rows
are counted in its own ``/metrics``, not here). Per arm:

- ``units`` (distinct hashed keys) and ``rows`` assigned to it; ``scored``: rows its own version
  served (``fallback``: rows control served because the arm's version was refused);
- ``outcomes`` joined to its predictions, of which ``successes``;
- ``matured``: predictions whose outcome arrived, or whose horizon has passed without one (such a
  prediction counts as not a success, the same rule for every arm).

``srm`` tests the units assigned under the weights now in force (rows whose recorded weights match)
against those weights: Pearson's χ² (scipy), the sample-ratio-mismatch check.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import msgspec

from ml_matching.contract.assignment import BUCKETS, CONTROL
from ml_matching.contract.experiment import Experiment, State, instant
from ml_matching.trainer import observations as seen
from ml_matching.trainer.controller import look
from ml_matching.trainer.database import Tx
from ml_matching.trainer.experiments import Controlled, Event
from ml_matching.trainer.online import ArmMetrics, arm_metrics
from ml_matching.trainer.plan import Phase, Plan

#: Below this many units in the current weights, the χ² test is not run (its approximation is poor).
SRM_MIN_UNITS = 100


class _Camel(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class _Counts(msgspec.Struct, rename="camel"):  # zero counts are shown
    pass


class ArmStats(_Counts):
    arm: str
    version: str
    weight: int
    units: int = 0
    rows: int = 0
    scored: int = 0
    fallback: int = 0
    outcomes: int = 0
    successes: int = 0
    matured: int = 0
    metrics: ArmMetrics | None = None  # over the matured predictions its own version served


class ShadowStats(_Counts):
    version: str
    rows: int = 0
    failed: int = 0


class Srm(_Camel):
    """Sample-ratio mismatch: units per arm under the weights in force, against those weights."""

    units: int
    p_value: float | None
    test: str = "pearson-chi2"
    note: str | None = None


class ExperimentView(_Camel):
    id: str
    name: str
    state: State
    revision: int
    control: str
    created_at: str
    horizon_days: float
    salt: str
    hash: str
    arms: list[ArmStats]
    shadow: list[ShadowStats]
    srm: Srm
    join_rate: float | None
    pending: int
    decisions: list[Event]
    phase: Phase | None = None
    step: int | None = None
    plan: Plan | None = None
    primary: dict[str, Any] | None = None  # the controller's statistics, as of now


def experiment_view(
    tx: Tx, controlled: Controlled, events: list[Event], at: dt.datetime | None = None
) -> ExperimentView:
    """The experiment with its counts and metrics, as of ``at`` (now by default: the horizon moves)."""
    experiment = controlled.experiment
    arms = _arms(experiment)
    by_name = {a.arm: a for a in arms}
    _assigned(tx, experiment.id, by_name)
    _outcomes(tx, experiment.id, by_name)
    moment = at or dt.datetime.now(dt.UTC)
    cutoff = moment - dt.timedelta(days=experiment.horizon_days)
    _expired(tx, experiment.id, instant(cutoff), by_name)
    _metrics(tx, experiment, by_name, instant(moment))
    joined = sum(a.outcomes for a in arms)  # the outcomes joined to this experiment's predictions
    pending = _pending(tx, experiment)
    total = joined + pending
    view = ExperimentView(
        experiment.id, experiment.name, experiment.state, experiment.revision, experiment.control,
        experiment.created_at, experiment.horizon_days, experiment.salt, experiment.hash, arms,
        _shadows(tx, experiment), srm(tx, experiment), joined / total if total else None, pending, events,
    )  # fmt: skip
    plan, progress = controlled.plan, controlled.progress
    if plan is None or progress is None:
        return view
    primary = None
    if progress.phase not in ("promoted", "rolled_back"):
        primary = look(tx, experiment, plan, progress, instant(moment)).details()
    return msgspec.structs.replace(view, phase=progress.phase, step=progress.step, plan=plan, primary=primary)


def _metrics(tx: Tx, experiment: Experiment, arms: dict[str, ArmStats], at: str) -> None:
    """Each arm's metrics over the matured predictions its own version served (control's too in an
    experiment of shadows alone, where control serves every unit)."""
    for candidate in experiment.candidates:
        control, treated = seen.split(tx, experiment, candidate.arm, experiment.created_at, at)
        arms[candidate.arm].metrics = arm_metrics(treated.p, treated.y)
        arms[CONTROL].metrics = arm_metrics(control.p, control.y)
    if not experiment.candidates:
        control, _ = seen.split(tx, experiment, CONTROL, experiment.created_at, at)
        arms[CONTROL].metrics = arm_metrics(control.p, control.y)


def _arms(experiment: Experiment) -> list[ArmStats]:
    control = ArmStats(CONTROL, experiment.control, BUCKETS - sum(experiment.weights))
    return [control, *(ArmStats(c.arm, c.version, c.weight) for c in experiment.candidates)]


def _assigned(tx: Tx, experiment_id: str, arms: dict[str, ArmStats]) -> None:
    for arm, units, rows, fallback in tx.execute(
        "SELECT arm, COUNT(DISTINCT unit), COUNT(*), SUM(fallback) FROM predictions "
        "WHERE experiment = ? AND arm IS NOT NULL GROUP BY arm",
        experiment_id,
    ).fetchall():
        if arm in arms:
            a = arms[arm]
            a.units, a.rows, a.fallback, a.scored = (
                int(units),
                int(rows),
                int(fallback),
                int(rows) - int(fallback),
            )


def _outcomes(tx: Tx, experiment_id: str, arms: dict[str, ArmStats]) -> None:
    for arm, n, successes in tx.execute(
        "SELECT p.arm, COUNT(*), SUM(o.outcome) FROM outcomes o JOIN predictions p ON o.prediction_id = p.id "
        "WHERE p.experiment = ? GROUP BY p.arm",
        experiment_id,
    ).fetchall():
        if arm in arms:
            arms[arm].outcomes, arms[arm].successes = int(n), int(successes)
            arms[arm].matured += int(n)


def _expired(tx: Tx, experiment_id: str, cutoff: str, arms: dict[str, ArmStats]) -> None:
    for arm, n in tx.execute(
        "SELECT arm, COUNT(*) FROM predictions p WHERE experiment = ? AND at < ? "
        "AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.prediction_id = p.id) GROUP BY arm",
        experiment_id,
        cutoff,
    ).fetchall():
        if arm in arms:
            arms[arm].matured += int(n)


def _pending(tx: Tx, experiment: Experiment) -> int:
    """Outcomes sent by prediction id since the experiment started that still wait for their
    prediction: which experiment a waiting outcome belongs to is known only when its prediction
    arrives, but none received before the experiment can be one of its own (its predictions' ids did
    not exist yet)."""
    (pending,) = tx.execute(
        "SELECT COUNT(*) FROM pending_outcomes WHERE received_at >= ?", experiment.created_at
    ).fetchone()
    return int(pending)


def _shadows(tx: Tx, experiment: Experiment) -> list[ShadowStats]:
    found: dict[str, ShadowStats] = {v: ShadowStats(v) for v in experiment.shadow}
    for version, rows, failed in tx.execute(
        "SELECT s.version, COUNT(*), SUM(CASE WHEN s.error IS NULL THEN 0 ELSE 1 END) FROM shadow_scores s "
        "JOIN predictions p ON s.prediction_id = p.id WHERE p.experiment = ? GROUP BY s.version",
        experiment.id,
    ).fetchall():
        found.setdefault(version, ShadowStats(version))
        found[version].rows, found[version].failed = int(rows), int(failed)
    return list(found.values())


def srm(tx: Tx, experiment: Experiment) -> Srm:
    """Pearson's χ² of the units assigned under the weights in force against those weights."""
    weights = {a.arm: a.weight for a in _arms(experiment)}
    units: dict[str, int] = defaultdict(int)
    for arm, weight, n in tx.execute(
        "SELECT arm, weight, COUNT(DISTINCT unit) FROM predictions "
        "WHERE experiment = ? AND arm IS NOT NULL GROUP BY arm, weight",
        experiment.id,
    ).fetchall():
        if arm in weights and weight == weights[arm]:
            units[arm] += int(n)
    return srm_test(weights, units)


def srm_test(weights: dict[str, int], units: dict[str, int]) -> Srm:
    """The χ² test of ``units`` per arm against ``weights`` (basis points)."""
    total = sum(units.values())
    if total < SRM_MIN_UNITS:
        return Srm(total, None, note=f"fewer than {SRM_MIN_UNITS} units under the weights in force")
    arms = [a for a, w in weights.items() if w > 0]
    if any(units.get(a, 0) for a, w in weights.items() if w == 0):
        return Srm(total, 0.0, note="units were assigned to an arm of weight 0")
    if len(arms) < 2:
        return Srm(total, None, note="only one arm has weight")
    observed = [units.get(a, 0) for a in arms]
    expected = [total * weights[a] / sum(weights[b] for b in arms) for a in arms]
    from scipy import stats  # here: a trainer with no experiment never needs SciPy's statistics

    return Srm(total, float(stats.chisquare(observed, expected).pvalue))
