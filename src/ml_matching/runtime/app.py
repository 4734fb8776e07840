"""The Litestar application: ``create_app(settings)``.

Serve it with ``ml-matching serve`` (or ``python -m ml_matching.runtime``), or
``uvicorn --factory ml_matching.runtime.app:serving_app`` (settings from the environment; the
factory ``ml-matching serve`` uses).
"""

from __future__ import annotations

import gc
import logging
import os

import anyio.to_thread
from litestar import Litestar
from litestar.config.cors import CORSConfig
from prometheus_client import CollectorRegistry, Counter

from ml_matching.http import (
    ApiDocs,
    Failures,
    before_routing,
    configure_logging,
    doc_pages,
    entry_middleware,
    logging_config,
    metrics_route,
    openapi_config,
    package_version,
)
from ml_matching.http.metrics import mark_worker_dead
from ml_matching.runtime.errors import RUNTIME_STATUSES
from ml_matching.runtime.fastpath import predict_fast_path
from ml_matching.runtime.ledger_process import LedgerProcess
from ml_matching.runtime.metrics import ModelMetrics
from ml_matching.runtime.routes import bad_path_part, build_routes, request_bodies
from ml_matching.runtime.service import ModelService
from ml_matching.runtime.serving import Recorder, Serving
from ml_matching.runtime.settings import Settings
from ml_matching.runtime.shadow import Shadows
from ml_matching.runtime.v2 import v2_router
from ml_matching.runtime.watch import ActiveWatch

log = logging.getLogger("ml_matching")
DESCRIPTION = "Match-success scores for influencer–brand pairs, served from ONNX with onnxruntime."


def create_app(settings: Settings | None = None, *, freeze_gc: bool = False) -> Litestar:
    """Build the service. ``settings`` default to the process environment.

    The model is loaded in the start-up hook, so a ``TestClient`` used as a context manager (or a
    server) serves it; scoring answers 503 until a model is loaded.

    ``freeze_gc`` (what ``ml-matching serve`` asks for; see :func:`serving_app`): once started,
    collect, then move every object alive to the collector's permanent generation. A full
    collection walked the whole heap of imported libraries, the app and the models: 34–43 ms with
    every request waiting, under an experiment's ledger rows (bench/experiments.py); with the start-up
    objects frozen it takes about 1 ms. A test process must not freeze: its garbage cycles would stay.
    """
    settings = settings or Settings.from_environ(os.environ)
    configure_logging(settings.log_level_number)
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry) if settings.metrics else None
    service = ModelService(settings, metrics)
    watch = ActiveWatch(service, settings.model_watch_seconds) if settings.watches_active else None
    docs = ApiDocs(request_bodies(settings.max_batch_rows), service.features)
    failures = Failures(RUNTIME_STATUSES, bad_path_part)
    serving = _serving(settings, service, metrics)

    async def start(_: Litestar) -> None:
        await anyio.to_thread.run_sync(service.start)
        serving.recorder.ledger.start()
        serving.recorder.shadows.start()
        if watch is not None:
            await anyio.to_thread.run_sync(watch.check)  # an experiment is followed from the start
            watch.start()
        if freeze_gc:
            gc.collect()
            gc.freeze()

    async def stop(_: Litestar) -> None:
        if watch is not None:
            await watch.stop()
        await anyio.to_thread.run_sync(serving.recorder.shadows.stop)
        await anyio.to_thread.run_sync(serving.recorder.ledger.stop)
        mark_worker_dead()

    def refresh() -> None:
        service.refresh_metrics()
        if metrics is not None:
            metrics.ledger.labels("queued").set(serving.recorder.ledger.counts.queued)
            metrics.ledger.labels("sent").set(serving.recorder.ledger.counts.sent)

    routes = [
        *build_routes(service, watch, serving),
        v2_router(service, package_version(), failures, serving),
        *doc_pages(docs, settings.docs_cdn),
    ]
    if settings.metrics:
        routes.append(metrics_route(registry, refresh))
    app = Litestar(
        route_handlers=routes,
        on_startup=[start],
        on_shutdown=[stop],
        exception_handlers=failures.handlers(),
        request_max_body_size=settings.body_limit,
        cors_config=_cors(settings),
        openapi_config=openapi_config(DESCRIPTION, docs),
        logging_config=logging_config(),
    )
    app.state.service = service
    app.state.watch = watch  # None when the service does not follow ACTIVE
    app.state.serving = serving
    app.state.body_limit = settings.body_limit
    fast = predict_fast_path(serving.predict, settings.body_limit, cors=bool(settings.allowed_origins))
    return before_routing(app, *entry_middleware(settings.max_header_bytes, registry, settings.metrics), fast)


def serving_app() -> Litestar:
    """The app as ``ml-matching serve`` runs it (each worker's factory): settings from the
    environment, the start-up heap frozen (see :func:`create_app`)."""
    return create_app(freeze_gc=True)


def _serving(settings: Settings, service: ModelService, metrics: ModelMetrics | None) -> Serving:
    """Routing, coalesced scoring, shadows and the ledger, wired to the service and its metrics."""
    ledger = LedgerProcess(settings.trainer_url, settings.ledger_queue, log_level=settings.log_level_number)

    def count_shadow(version: str, result: str, rows: int) -> None:
        if metrics is not None:
            metrics.shadow_rows.labels(version, result).inc(rows)

    arm_rows: dict[tuple[str, str], Counter] = {}  # labels() took 1.1 µs a call, once per group

    def count_arm(arm: str, served_by: str, rows: int) -> None:
        if metrics is not None:
            if (arm, served_by) not in arm_rows:
                arm_rows[arm, served_by] = metrics.experiment_rows.labels(arm, served_by)
            arm_rows[arm, served_by].inc(rows)

    if metrics is not None:
        ledger.on_drop = lambda n, _: metrics.ledger_dropped.inc(n)
    shadows = Shadows(settings.shadow_queue, ledger.put_group, count_shadow)
    recorder = Recorder(settings.ledger, ledger, shadows, count_arm)
    return Serving(lambda: service.scorer, lambda: service.arms, recorder, lambda: service.held)


def _cors(settings: Settings) -> CORSConfig | None:
    if not settings.allowed_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.allowed_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        # The unit key of an experiment, and OIP's binary-extension header: a browser asks for each.
        allow_headers=["content-type", "authorization", "ml-unit-key", "inference-header-content-length"],
    )
