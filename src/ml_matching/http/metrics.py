"""Prometheus metrics both services share (prometheus-client): requests by route, ``/metrics``, gauges.

Kept cheap on the request path and bounded in labels.

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
    name: str,
    doc: str,
    labels: list[str],
    registry: CollectorRegistry,
    mode: GaugeMode = "liveall",
    namespace: str = NAMESPACE,
) -> Gauge:
    """A gauge; in multiprocess mode each live worker's value is kept with a ``pid`` label."""
    return Gauge(name, doc, labels, namespace=namespace, registry=registry, multiprocess_mode=mode)


def metrics_route(registry: CollectorRegistry, before: Callable[[], None] = lambda: None) -> HTTPRouteHandler:
    """``GET /metrics`` in Prometheus' text format; ``before`` refreshes what is read on demand."""

    @get("/metrics", include_in_schema=False, sync_to_thread=False)
    def metrics() -> Response[bytes]:
        before()
        if multiprocess():
            collected = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
            return _exposition(generate_latest(collected))
        return _exposition(generate_latest(registry))

    return metrics


def _exposition(body: bytes) -> Response[bytes]:
    # As a header, not a media type: Litestar appends a charset to text/ media types, and prometheus'
    # type already has one (`charset=utf-8; charset=utf-8`).
    return Response(body, headers={"content-type": CONTENT_TYPE_LATEST})


def mark_worker_dead() -> None:
    """At a worker's shutdown: drop its live gauges from the shared folder."""
    if multiprocess():
        prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def forget(gauge: Gauge, labelsets: Iterable[tuple[str, ...]], last: float) -> None:
    """Drop series of ``gauge``. Multiprocess mode cannot remove a series from the shared files, so
    there its last value becomes ``last`` (0 for an info gauge, NaN for a reading that no longer holds)."""
    for labels in labelsets:
        if multiprocess():
            gauge.labels(*labels).set(last)
        else:
            gauge.remove(*labels)
