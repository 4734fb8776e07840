"""The runtime's model metrics: rows scored, batch sizes, the served version, loads, swaps, drift.

Requests are counted by :class:`ml_matching.http.metrics.HttpMetrics`, as in the trainer.
"""

from __future__ import annotations

import datetime as dt
import math

from prometheus_client import CollectorRegistry, Counter, Histogram

from ml_matching.http.metrics import NAMESPACE, forget, gauge
from ml_matching.runtime.drift import DriftReport


class ModelMetrics:
    """What the runtime serves: rows scored, batch sizes, the served version, loads, swaps, drift."""

    def __init__(self, registry: CollectorRegistry) -> None:
        ns, reg = NAMESPACE, registry
        self.predictions = Counter(
            "predictions", "Rows scored, by model version", ["version"], namespace=ns, registry=reg
        )
        self.batch_rows = Histogram(
            "batch_rows", "Rows per /predict/batch or v2 infer request", namespace=ns, registry=reg,
            buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000),
        )  # fmt: skip
        self.loads = Counter(
            "model_loads", "Versions loaded, and refused with the check they failed", ["result", "check"],
            namespace=ns, registry=reg,
        )  # fmt: skip
        self.swaps = Counter(
            "model_swaps", "Hot swaps from one version to another", namespace=ns, registry=reg
        )
        # Per worker (a pid label in multiprocess mode): which version each one serves.
        self.info = gauge(
            "model_info", "The version served (1), with its algorithm", ["version", "algorithm"], reg
        )
        # Refreshed when /metrics is read, by the worker that answers (all follow the same ACTIVE).
        self.age = gauge(
            "model_age_seconds", "Seconds since the served version was trained", [], reg, "mostrecent"
        )
        self.psi = gauge(
            "feature_psi", "Population stability index of the served version's recent rows against its "
            "training data, by feature (< 0.1 stable, > 0.25 shifted)", ["feature"], reg, "mostrecent",
        )  # fmt: skip
        self.out_of_range = gauge(
            "feature_out_of_range_ratio", "Share of recent rows outside the training min/max, by feature",
            ["feature"], reg, "mostrecent",
        )  # fmt: skip
        self.experiment_rows = Counter(
            "experiment_rows",
            "Rows served under an experiment, by arm and by whom: the arm's version, or control (fallback)",
            ["arm", "served_by"],
            namespace=ns,
            registry=reg,
        )
        self.shadow_rows = Counter(
            "shadow_rows", "Rows given to shadows: scored, failed (it raised) or skipped (queue full)",
            ["version", "result"], namespace=ns, registry=reg,
        )  # fmt: skip
        self.ledger_dropped = Counter(
            "ledger_dropped_rows", "Ledger rows dropped (queue full, no trainer, refused)", namespace=ns,
            registry=reg,
        )  # fmt: skip
        self.ledger = gauge(
            "ledger_rows", "Ledger rows queued now, and sent since start (acknowledged by the trainer)",
            ["state"], reg, "livesum",
        )  # fmt: skip
        self._served: tuple[str, str] | None = None
        self._features: set[str] = set()  # those with drift gauges set

    def serving(self, version: str, algorithm: str, previous: str | None) -> None:
        """A version was loaded and now serves (``previous`` served before it)."""
        if self._served is not None:
            forget(self.info, [self._served], 0.0)
        self._served = (version, algorithm)
        self.info.labels(version, algorithm).set(1)
        self.loads.labels("loaded", "").inc()
        if previous is not None and previous != version:
            self.swaps.inc()
        # A new scorer's drift window starts empty, a reload of the same version's too: no drift
        # reading until it has DRIFT_MIN_ROWS (a stale one would contradict /monitoring/drift).
        features = [(f,) for f in self._features]
        forget(self.psi, features, math.nan)
        forget(self.out_of_range, features, math.nan)
        self._features = set()

    def refused(self, check: str) -> None:
        self.loads.labels("refused", check).inc()

    def refresh(self, created_at: str, drift: DriftReport) -> None:
        """The gauges computed on demand: the served version's age and its drift."""
        trained = dt.datetime.fromisoformat(created_at)
        if trained.tzinfo is None:  # sidecars are written in UTC
            trained = trained.replace(tzinfo=dt.UTC)
        self.age.set(max(0.0, (dt.datetime.now(dt.UTC) - trained).total_seconds()))
        for feature in drift.features:
            if feature.psi is not None and feature.out_of_range is not None:
                self._features.add(feature.name)
                self.psi.labels(feature.name).set(feature.psi)
                self.out_of_range.labels(feature.name).set(feature.out_of_range)
