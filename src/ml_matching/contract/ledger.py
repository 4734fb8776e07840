"""The prediction ledger's rows: what was scored, by which version, for which arm, and when.

A runtime (or the Node client scoring in-process) records one row per prediction made under an
experiment (with ``LEDGER=all``, every prediction) and sends them to the trainer's
``POST /predictions`` in batches. The trainer keeps them beside the outcomes, so an outcome that
arrives days later, sent as ``{"predictionId": ..., "outcome": ...}``, joins the very score it
judges: its features, its version, its arm.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

PredictionId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        description="a UUIDv7, as the runtime answers it in `predictionId`",
    ),
]


#: When the prediction was made: UTC to the millisecond, so times compare as text.
Instant = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
        description="UTC, e.g. 2026-11-30T12:00:00.000Z",
    ),
]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Weight = Annotated[int, msgspec.Meta(ge=0, le=10_000, description="basis points of the units")]
UnitDigest = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$", description="hex SHA-256 of salt and key")]


class ShadowScore(msgspec.Struct, rename="camel", frozen=True, omit_defaults=True):
    """A shadow version's score of the same row: its probability, or why there is none."""

    version: str
    probability: Probability | None = None
    error: str | None = None


class LedgerRow(msgspec.Struct, rename="camel", frozen=True, omit_defaults=True):
    """One prediction as it was served.

    ``version`` served it with ``probability`` (of success, 0 to 1). Under an experiment:
    ``experiment`` at its ``revision``, the unit's ``arm`` and that arm's ``weight`` (basis points), the
    ``unit`` as its salted SHA-256 (never the key itself) and the ``hash`` that assigned it;
    ``fallback`` when the arm's version did not serve and control did instead, ``error`` why (it
    was refused, or it raised); ``ms`` how long the serving version took to score the row's group
    (the operational guardrails read it); ``shadow`` the shadow versions' scores. ``features`` is
    the scored row, in the served version's feature set: the float32 values the model saw (the
    trainer checks them against the version's bounds as float32, so a value sent at a bound float32
    cannot hold, such as 0.1, passes as 0.10000000149011612). ``holdout``: the long-lived holdout the
    unit was placed by (:mod:`.holdout`): a held unit's row has ``arm`` ``holdout`` and no
    ``experiment``; a live unit's has its experiment's fields, or ``arm`` ``live`` outside one.
    """

    prediction_id: PredictionId
    at: Instant
    version: str
    probability: Probability
    features: dict[str, float]
    experiment: str | None = None
    revision: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None  # an experiment's, from 1
    arm: str | None = None
    weight: Weight | None = None
    unit: UnitDigest | None = None
    hash: str | None = None
    fallback: bool = False
    error: str | None = None
    ms: Annotated[float, msgspec.Meta(ge=0)] | None = None
    shadow: tuple[ShadowScore, ...] = ()
    source: Literal["runtime", "node"] = "runtime"
    holdout: str | None = None


class LedgerBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /predictions``: rows to keep; sending the same rows again stores nothing twice."""

    rows: Annotated[list[LedgerRow], msgspec.Meta(min_length=1, max_length=10_000)]
