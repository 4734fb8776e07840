"""The controller: one decision loop over controlled experiments, each decision logged with its inputs.

Every ``CONTROLLER_SECONDS`` it takes a *look* at each running experiment that has a plan
(:mod:`.plan`), inside a writing transaction (so nothing is received while it looks, and a second
trainer on the same database looks after it, never at the same time), and decides:

1. **roll back** when an operational guardrail fails (the candidate's error rate or p99 scoring time
   over the last window), when the sequential sample-ratio-mismatch p-value falls below 0.001, or
   when the primary metric shows harm beyond the margin (anytime-valid: looking after every
   outcome does not inflate the error rate). The candidate's weight goes to 0, the experiment stops,
   ``ACTIVE`` stays the champion.
2. **advance** to the next step once the step's minimum duration and matured outcomes are met;
3. **promote** at the end of the ramp when non-inferior (or superior, when asked): ``ACTIVE``
   becomes the candidate;
4. **hold** at the end of the ramp while the primary test is inconclusive (too few labels, labels
   lagging, or an empty or NaN metric): the weights stay, nothing aborts; the next looks decide.

Otherwise nothing is recorded. Each decision's event holds the look's statistics and the state it
was taken from, so :func:`replay` recomputes it from the ledger and the outcomes, bit for bit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import msgspec

from ml_matching.contract.experiment import Experiment
from ml_matching.trainer import observations as seen
from ml_matching.trainer.database import Tx
from ml_matching.trainer.online import BOUNDS, LOWER_IS_BETTER, unit_values
from ml_matching.trainer.plan import Plan, Progress, phase_of
from ml_matching.trainer.sequential import paired_cs, split_cs, srm_sequential, verdict

log = logging.getLogger("ml_matching.trainer")
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Look:
    """What one look saw, and the statistics computed from it (all plain numbers, for the log)."""

    at: str
    test: str  # "paired" (a shadow step) or "split"
    estimate: float | None
    lower: float | None
    upper: float | None
    n: int
    verdict: str
    step_outcomes: int
    elapsed: float
    srm_p: float
    rows: int | None = None
    error_rate: float | None = None
    p99_ms: float | None = None

    def details(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Decision:
    kind: str  # rollback, advance, promote, hold
    reason: str
    look: Look


def look(tx: Tx, experiment: Experiment, plan: Plan, progress: Progress, at: str) -> Look:
    """Everything the decision rests on, as the trainer had received it by ``at``."""
    candidate = experiment.candidates[0]
    primary = plan.primary
    lower_is_better = LOWER_IS_BETTER[primary.metric]
    if progress.phase == "shadow":
        pairs = seen.paired(tx, experiment, candidate.version, progress.step_started_at, at)
        diff = unit_values(primary.metric, pairs.shadow, pairs.y) - unit_values(
            primary.metric, pairs.served, pairs.y
        )
        cs = paired_cs(diff, BOUNDS[primary.metric], primary.alpha)
        step_outcomes, test, ops, srm_p = len(diff), "paired", None, progress.srm_p
    else:
        # Only this step's rows: pooled across steps of other splits, the candidate's rows would come
        # mostly from later steps and control's from earlier ones, and any drift of the success rate
        # over time would read as a difference of the models (Simpson's paradox). Each step's looks
        # are anytime-valid at alpha; a ramp of k steps errs at most k * alpha (union bound, measured
        # in tests/statistics/test_error_rates.py).
        weight = plan.ramp[progress.step].weight
        control, treated = seen.split(tx, experiment, candidate.arm, progress.step_started_at, at, weight)
        cs = split_cs(
            unit_values(primary.metric, control.p, control.y),
            unit_values(primary.metric, treated.p, treated.y),
            primary.alpha,
        )
        step_outcomes = control.made_since(progress.step_started_at) + treated.made_since(
            progress.step_started_at
        )
        window = seen.shifted(at, -plan.guardrails.window_seconds)
        ops = seen.operations(tx, experiment, candidate.arm, window, at)
        weights = seen.design(experiment)
        units = seen.units(tx, experiment, at)
        arms = sorted(weights)
        srm = srm_sequential(
            [units.get(a, 0) for a in arms], [weights[a] for a in arms], SRM_ALPHA, progress.srm_p
        )
        srm_p, test = srm.p_value, "split"
    return Look(
        at=at,
        test=test,
        estimate=_finite(cs.estimate),
        lower=_finite(cs.lower),
        upper=_finite(cs.upper),
        n=cs.n,
        verdict=verdict(cs, lower_is_better, primary.margin, primary.test),
        step_outcomes=step_outcomes,
        elapsed=seen.seconds_between(progress.step_started_at, at),
        srm_p=srm_p,
        rows=None if ops is None else ops.rows,
        error_rate=None if ops is None else ops.error_rate,
        p99_ms=None if ops is None else ops.p99_ms,
    )


def decide(plan: Plan, progress: Progress, seen_: Look) -> Decision | None:
    """The decision of one look (None: nothing to do). A pure function of its arguments."""
    g, step = plan.guardrails, plan.ramp[progress.step]
    if seen_.rows is not None and seen_.rows >= g.min_rows:
        if seen_.error_rate is not None and seen_.error_rate > g.error_rate:
            return Decision(
                "rollback", f"guardrail: error rate {seen_.error_rate:.3g} > {g.error_rate:g}", seen_
            )
        if seen_.p99_ms is not None and seen_.p99_ms > g.p99_ms:
            return Decision("rollback", f"guardrail: p99 {seen_.p99_ms:.1f} ms > {g.p99_ms:g} ms", seen_)
    if seen_.srm_p < SRM_ALPHA:
        return Decision(
            "rollback", f"sample-ratio mismatch: sequential p {seen_.srm_p:.2g} < {SRM_ALPHA}", seen_
        )
    if seen_.verdict == "harm":
        return Decision(
            "rollback", f"{plan.primary.metric} harm beyond the margin {plan.primary.margin:g}", seen_
        )
    if progress.phase == "held":
        if progress.manual_hold or not _shippable(plan, seen_):
            return None
        return Decision("promote", f"{plan.primary.metric} {seen_.verdict} after the hold", seen_)
    if seen_.elapsed < step.min_seconds or seen_.step_outcomes < step.min_outcomes:
        return None
    if progress.step + 1 < len(plan.ramp):
        return Decision(
            "advance", f"step {progress.step} done; to weight {plan.ramp[progress.step + 1].weight}", seen_
        )
    if _shippable(plan, seen_):
        return Decision("promote", f"end of the ramp: {plan.primary.metric} {seen_.verdict}", seen_)
    return Decision(
        "hold", f"end of the ramp: {plan.primary.metric} {seen_.verdict}; holding until decisive", seen_
    )


def _shippable(plan: Plan, seen_: Look) -> bool:
    wanted = ("superior",) if plan.primary.test == "superiority" else ("noninferior", "superior")
    return seen_.verdict in wanted


def after(kind: str, plan: Plan, progress: Progress, at: str) -> Progress:
    """The progress a decision (or the same manual action) leads to."""
    if kind == "advance":
        step = progress.step + 1
        phase = phase_of(plan.ramp[step])
        ramp_started = progress.ramp_started_at or (at if phase == "ramp" else None)
        # Advancing out of a hold by hand ends that hold: left set, it would keep the controller from
        # ever promoting after a hold of its own at the end of the ramp.
        return msgspec.structs.replace(
            progress, phase=phase, step=step, step_started_at=at, ramp_started_at=ramp_started, srm_p=1.0,
            manual_hold=False,
        )  # fmt: skip
    if kind == "hold":
        return msgspec.structs.replace(progress, phase="held")
    if kind == "release":
        return msgspec.structs.replace(progress, phase=phase_of(plan.ramp[progress.step]), manual_hold=False)
    if kind in ("promote", "rollback"):
        return msgspec.structs.replace(progress, phase="promoted" if kind == "promote" else "rolled_back")
    raise ValueError(kind)


def serving(kind: str, experiment: Experiment, plan: Plan, progress: Progress) -> Experiment:
    """The EXPERIMENT the runtimes follow after a decision: the candidate's weight (and shadow) for
    the new step; stopped, with the candidate at weight 0, when it is promoted or rolled back."""
    candidate = experiment.candidates[0]
    shadow = tuple(v for v in experiment.shadow if v != candidate.version)
    if kind in ("promote", "rollback"):
        weight, state = 0, "stopped"
    else:
        weight, state = plan.ramp[progress.step].weight, experiment.state
        if weight == 0:
            shadow = (*shadow, candidate.version)
    changed = msgspec.structs.replace(candidate, weight=weight)
    return msgspec.structs.replace(
        experiment, candidates=(changed,), shadow=shadow, state=state, revision=experiment.revision + 1
    )


def _finite(x: float | None) -> float | None:
    return x if x is not None and x == x and abs(x) != float("inf") else None
