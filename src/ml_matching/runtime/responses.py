"""The answers of the runtime's non-scoring endpoints, as Structs (their JSON Schemas are generated).

The scoring answers are in :mod:`ml_matching.runtime.scoring`; errors are :class:`ml_matching.http.ErrorBody`.
"""

from __future__ import annotations

import msgspec

from ml_matching.contract import Metrics


class _Camel(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class ArmView(_Camel):
    """An arm as this replica serves it: its version, weight, and why control serves it instead."""

    arm: str
    version: str
    weight: int
    refused: str | None = None


class ExperimentView(_Camel):
    """The experiment this replica follows (``GET /health``): its arms and shadows as loaded here."""

    id: str
    name: str
    state: str
    revision: int
    control: str
    arms: list[ArmView]
    shadow: list[ArmView]


class HoldoutView(_Camel):
    """The holdout this replica follows (``GET /health``): its frozen version and share of the units."""

    id: str
    version: str
    weight: int


class LedgerView(_Camel):
    """The prediction ledger's queue on this replica: rows waiting, sent, dropped, and why it waits."""

    mode: str
    queued: int
    sent: int
    dropped: int
    trainer: str | None = None
    last_error: str | None = None


class Health(_Camel):
    """``GET /health``: liveness; the version served (``null`` when none) and the one ACTIVE names.

    When they differ the replica is catching up (within MODEL_WATCH_SECONDS), or refused the
    version ACTIVE names: ``activeRefused`` then says why. ``fallback`` says why a replica serves an
    earlier promoted version after ACTIVE's failed its checks at start-up (it is still ready).
    ``experiment`` is the experiment it follows (``experimentRefused``: why it follows none),
    ``holdout`` the holdout (``holdoutRefused``: why it follows none), and ``ledger`` its queue of
    prediction-ledger rows.
    """

    status: str
    service: str
    model_loaded: bool
    model_version: str | None
    timestamp: str
    active_version: str | None
    active_refused: str | None = None
    fallback: str | None = None
    experiment: ExperimentView | None = None
    experiment_refused: str | None = None
    holdout: HoldoutView | None = None
    holdout_refused: str | None = None
    ledger: LedgerView | None = None


class Ready(_Camel):
    """``GET /health/ready`` (200): a verified model is loaded."""

    status: str
    model_version: str


class SummaryMetrics(_Camel):
    cross_validation: Metrics
    holdout: Metrics


class ModelSummary(_Camel):
    """One entry of ``GET /models``; a version whose sidecar cannot be read has ``error`` instead."""

    version: str
    active: bool
    timestamp: str | None = None
    algorithm: str | None = None
    metrics: SummaryMetrics | None = None
    error: str | None = None


class LoadResult(_Camel):
    """``POST /models/{version}/load``: what serves now, what served before, whether ACTIVE was written."""

    status: str
    version: str
    previous_version: str | None
    persisted: bool
    #: Worker processes serving on this port; with more than one, ``note`` says how the others follow.
    workers: int = 1
    note: str | None = None


class DriftBins(_Camel):
    """The training histogram's bin edges, with the training and window counts in each bin."""

    edges: list[float]
    training: list[int]
    window: list[int]


class FeatureDriftView(_Camel):
    """One feature's drift: ``psi`` and ``outOfRange`` are ``null`` until the window has ``minRows``."""

    name: str
    psi: float | None
    reading: str
    out_of_range: float | None
    rows: int
    training_min: float
    training_max: float
    bins: DriftBins


class DriftView(_Camel):
    """``GET /monitoring/drift``: the served version's recent rows against its training data.

    ``reading`` per feature: ``stable`` (PSI < 0.1), ``moderate`` (0.1 to 0.25), ``shifted``
    (> 0.25), or ``insufficient`` before ``minRows`` rows. The window starts empty at every swap.
    """

    version: str
    rows: int
    window: int
    min_rows: int
    features: list[FeatureDriftView]
