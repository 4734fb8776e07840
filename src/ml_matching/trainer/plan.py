"""A controlled experiment's plan (its ramp, primary metric and guardrails) and where it stands.

``POST /experiments`` with a ``ramp`` hands the experiment to the controller (:mod:`.controller`):

- ``ramp``: steps, each a candidate ``weight`` (basis points; 0 is a *shadow* step: the candidate
  scores every row beside control and serves none), a minimum duration and a minimum of matured
  outcomes before the next step;
- ``primary``: the metric the decision rests on, the test (non-inferiority by ``margin``, or
  superiority) and its α;
- ``guardrails``: the candidate's error rate and p99 scoring latency over the last
  ``windowSeconds``, from the ledger rows the runtimes send.

:class:`Progress` is where the controller has got to: the phase (``shadow``, ``ramp``, ``held``,
``promoted``, ``rolled_back``), the step and when it started, and the running minimum of the
sequential sample-ratio-mismatch p-value.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

import msgspec

from ml_matching.contract import InvalidInput
from ml_matching.contract.assignment import BUCKETS

Phase = Literal["shadow", "ramp", "held", "promoted", "rolled_back"]
Metric = Literal["logLoss", "brier", "successRate"]
Test = Literal["nonInferiority", "superiority"]
METRICS: tuple[str, ...] = get_args(Metric)
TESTS: tuple[str, ...] = get_args(Test)
Basis = Annotated[int, msgspec.Meta(ge=0, le=BUCKETS, description="basis points of the units (0 to 10,000)")]


class _Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True, frozen=True):
    pass


class RampStep(_Body, frozen=True):
    """One step: the candidate's weight, and what must pass before the next step."""

    weight: Basis
    min_seconds: Annotated[float, msgspec.Meta(ge=0, le=90 * 86_400)] = 0.0
    min_outcomes: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0


class Primary(_Body, frozen=True):
    """The metric the ship/roll-back decision rests on (lower is better, except ``successRate``)."""

    metric: Metric = "logLoss"
    test: Test = "nonInferiority"
    margin: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.02
    alpha: Annotated[float, msgspec.Meta(gt=0, le=0.5)] = 0.05


class Guardrails(_Body, frozen=True):
    """Operational limits on the candidate's own rows over the last ``window_seconds``."""

    error_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.01
    p99_ms: Annotated[float, msgspec.Meta(gt=0)] = 50.0
    window_seconds: Annotated[float, msgspec.Meta(ge=10, le=3600)] = 60.0
    min_rows: Annotated[int, msgspec.Meta(ge=1)] = 20


class Plan(_Body, frozen=True):
    ramp: tuple[RampStep, ...]
    primary: Primary = Primary()
    guardrails: Guardrails = Guardrails()

    def check(self, candidates: int) -> None:
        """Raise InvalidInput unless the plan can drive an experiment of ``candidates`` candidates."""
        if candidates != 1:
            raise InvalidInput(f"a ramp drives one candidate; got {candidates}")
        if not self.ramp:
            raise InvalidInput("`ramp` needs at least one step")
        weights = [s.weight for s in self.ramp]
        if weights != sorted(weights):
            raise InvalidInput(f"ramp weights must not go down (units never move back): got {weights}")
        if weights[-1] == 0:
            raise InvalidInput("the last ramp step must serve the candidate (a weight above 0)")


class Progress(msgspec.Struct, rename="camel", frozen=True):
    """Where a controlled experiment stands."""

    phase: Phase
    step: int
    step_started_at: str
    ramp_started_at: str | None = None  # when the candidate first served (its first weight above 0)
    srm_p: float = 1.0  # the running minimum of the sequential SRM p-value
    manual_hold: bool = False


def phase_of(step: RampStep) -> Phase:
    return "shadow" if step.weight == 0 else "ramp"


def initial(plan: Plan, at: str) -> Progress:
    """Where a new controlled experiment starts: its first step, now."""
    phase = phase_of(plan.ramp[0])
    return Progress(phase, 0, at, at if phase == "ramp" else None)


def parse_ramp(text: str, where: str = "--ramp") -> tuple[RampStep, ...]:
    """``WEIGHT[:MIN_SECONDS[:MIN_OUTCOMES]],...`` (the CLI's and EXPERIMENT_RAMP's form) as steps."""
    steps = []
    for part in text.split(","):
        values = [_number(v, where) for v in part.strip().split(":")]
        if not 1 <= len(values) <= 3:
            raise InvalidInput(f"{where}: step `{part}`: expected WEIGHT[:MIN_SECONDS[:MIN_OUTCOMES]]")
        fields: dict[str, float] = {}
        for key, whole, v in zip(
            ("weight", "minSeconds", "minOutcomes"), (True, False, True), values, strict=False
        ):
            if whole and not v.is_integer():  # int() would cut 1000.9 to 1000 without a word
                raise InvalidInput(f"{where}: step `{part}`: {key} {v:g} is not a whole number")
            fields[key] = int(v) if whole else v
        try:
            steps.append(msgspec.convert(fields, RampStep))
        except msgspec.ValidationError as exc:
            raise InvalidInput(f"{where}: step `{part}`: {exc}") from None
    return tuple(steps)


def parse_primary(text: str, where: str = "--primary") -> Primary:
    """``METRIC[:TEST[:MARGIN[:ALPHA]]]`` as the primary test."""
    values = text.split(":")
    if len(values) > 4:
        raise InvalidInput(f"{where}: expected METRIC[:TEST[:MARGIN[:ALPHA]]], got `{text}`")
    fields: dict[str, object] = dict(zip(("metric", "test"), values[:2], strict=False))
    for key, allowed in (("metric", METRICS), ("test", TESTS)):
        if key in fields and fields[key] not in allowed:
            raise InvalidInput(f"{where}: {key} `{fields[key]}` is not one of {', '.join(allowed)}")
    fields.update(zip(("margin", "alpha"), (_number(v, where) for v in values[2:]), strict=False))
    try:
        return msgspec.convert(fields, Primary)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{where}: `{text}` is not a number") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{where}: `{text}` is not a finite number")
    return value
