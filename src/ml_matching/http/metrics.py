"""Prometheus metrics (prometheus-client), kept cheap on the request path and bounded in labels.

Every request is counted by route *template* (``/models/{version}``; ``unmatched`` when no route
has its path or method), method (``other`` for made-up ones) and status, and timed by route. Label
children are cached, so a request costs a dict look-up, a counter increment and a histogram
observation. With ``METRICS=off`` nothing is recorded and ``/metrics`` is not served.

Several worker processes share one set of metrics through prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, a fresh folder per start, set by ``python -m runtime``): counters
and histograms add up across workers; per-worker gauges carry a ``pid`` label; the gauges computed
when ``/metrics`` is read (drift, model age) are those of the worker that answered.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any, Literal

from litestar import Response, get
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from runtime.drift import DriftReport

# A `_created` twin of every counter and histogram doubles the series for a timestamp Prometheus
# does not need (it detects counter resets itself).
disable_created_metrics()  # type: ignore[no-untyped-call]

NAMESPACE = "ml_matching"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess() -> bool:
    """Whether metrics are shared between worker processes (PROMETHEUS_MULTIPROC_DIR is set)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class HttpMetrics:
    """Requests by route template, method and status; their duration by route."""

    def __init__(self, registry: CollectorRegistry, namespace: str = NAMESPACE) -> None:
        self._requests = Counter(
            "http_requests", "HTTP requests by route template, method and status",
            ["route", "method", "status"], namespace=namespace, registry=registry,
        )  # fmt: skip
        self._duration = Histogram(
            "http_request_duration_seconds", "Time to answer, by route template",
            ["route"], namespace=namespace, registry=registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self._requests.labels(route, method, str(status)), self._duration.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """``app`` timing and counting every HTTP request, routed or not (404s count as unmatched)."""
        observe = self.observe

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = perf_counter()
            status = 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                # Set by Litestar's router once a route matched; methods are bounded by the server.
                route = scope.get("path_template") or UNMATCHED
                method = scope["method"] if scope["method"] in METHODS else "other"
                observe(route, method, status, perf_counter() - started)

        return timed


GaugeMode = Literal["liveall", "mostrecent", "livesum", "max"]


def gauge(
    name: str, doc: str, labels: list[str], registry: CollectorRegistry, mode: GaugeMode = "liveall"
) -> Gauge:
    """A gauge; in multiprocess mode each live worker's value is kept with a ``pid`` label."""
    return Gauge(name, doc, labels, namespace=NAMESPACE, registry=registry, multiprocess_mode=mode)


def metrics_route(registry: CollectorRegistry, before: Callable[[], None] = lambda: None) -> HTTPRouteHandler:
    """``GET /metrics`` in Prometheus' text format; ``before`` refreshes what is read on demand."""

    @get("/metrics", include_in_schema=False, sync_to_thread=False)
    def metrics() -> Response[bytes]:
        before()
        if multiprocess():
            collected = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
            return Response(generate_latest(collected), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def mark_worker_dead() -> None:
    """At a worker's shutdown: drop its live gauges from the shared folder."""
    if multiprocess():
        prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


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
        self._served: tuple[str, str] | None = None
        self._features: set[str] = set()  # those with drift gauges set

    def serving(self, version: str, algorithm: str, previous: str | None) -> None:
        """A version was loaded and now serves (``previous`` served before it)."""
        if self._served is not None:
            _forget(self.info, [self._served], 0.0)
        self._served = (version, algorithm)
        self.info.labels(version, algorithm).set(1)
        self.loads.labels("loaded", "").inc()
        if previous is not None and previous != version:
            self.swaps.inc()
            # The new version's window starts empty: no drift reading until it has DRIFT_MIN_ROWS.
            features = [(f,) for f in self._features]
            _forget(self.psi, features, math.nan)
            _forget(self.out_of_range, features, math.nan)
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


def _forget(gauge: Gauge, labelsets: Iterable[tuple[str, ...]], last: float) -> None:
    """Drop series of ``gauge``. Multiprocess mode cannot remove a series from the shared files, so
    there its last value becomes ``last`` (0 for an info gauge, NaN for a reading that no longer holds)."""
    for labels in labelsets:
        if multiprocess():
            gauge.labels(*labels).set(last)
        else:
            gauge.remove(*labels)
