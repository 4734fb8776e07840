"""The Litestar application: ``create_app(settings)``.

Serve it with ``python -m runtime``, or ``uvicorn --factory runtime.web.app:create_app`` (settings
from the environment).
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

import anyio.to_thread
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from prometheus_client import CollectorRegistry

from runtime.settings import Settings
from runtime.web.failures import error_handlers, logging_config
from runtime.web.limits import Middleware, before_routing, header_limit
from runtime.web.metrics import NAMESPACE, HttpMetrics, ModelMetrics, mark_worker_dead, metrics_route
from runtime.web.openapi import ApiDocs, FollowingJson, doc_pages
from runtime.web.routes import build_routes, request_bodies
from runtime.web.service import ModelService
from runtime.web.v2 import v2_router
from runtime.web.watch import ActiveWatch

log = logging.getLogger("ml_matching")


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the service. ``settings`` default to the process environment.

    The model is loaded in the start-up hook, so a ``TestClient`` used as a context manager (or a
    server) serves it; scoring answers 503 until a model is loaded.
    """
    settings = settings or Settings.from_environ(os.environ)
    configure_logging(settings.log_level_number)
    registry = CollectorRegistry()
    service = ModelService(settings, ModelMetrics(registry) if settings.metrics else None)
    watch = ActiveWatch(service, settings.model_watch_seconds) if settings.watches_active else None
    docs = ApiDocs(request_bodies(settings.max_batch_rows), service.features)

    async def start(_: Litestar) -> None:
        await anyio.to_thread.run_sync(service.start)
        if watch is not None:
            watch.start()

    async def stop(_: Litestar) -> None:
        if watch is not None:
            await watch.stop()
        mark_worker_dead()

    routes = [
        *build_routes(service, watch),
        v2_router(service, package_version()),
        *doc_pages(docs, settings.docs_cdn),
    ]
    if settings.metrics:
        routes.append(metrics_route(registry, service.refresh_metrics))
    app = Litestar(
        route_handlers=routes,
        on_startup=[start],
        on_shutdown=[stop],
        exception_handlers=error_handlers(),
        request_max_body_size=settings.body_limit,
        cors_config=_cors(settings),
        openapi_config=openapi_config(
            "Match-success scores for influencer–brand pairs, served from ONNX with onnxruntime.", docs
        ),
        logging_config=logging_config(),
    )
    app.state.service = service
    app.state.body_limit = settings.body_limit
    return before_routing(app, *entry_middleware(settings.max_header_bytes, registry, settings.metrics))


def entry_middleware(
    max_header_bytes: int, registry: CollectorRegistry, metrics: bool, namespace: str = NAMESPACE
) -> list[Middleware]:
    """What sees every request before routing: the request metrics (when on), the header limit."""
    limit = header_limit(max_header_bytes)
    return [HttpMetrics(registry, namespace).middleware, limit] if metrics else [limit]


def configure_logging(level: int) -> None:
    """One stderr handler on the ``ml_matching`` logger (idempotent)."""
    log.setLevel(level)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.propagate = False


def _cors(settings: Settings) -> CORSConfig | None:
    if not settings.allowed_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.allowed_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["content-type", "authorization"],
    )


def package_version() -> str:
    try:
        return dist_version("ml-matching")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0"


def openapi_config(description: str, docs: ApiDocs, title: str = "ml-matching") -> OpenAPIConfig:
    """``/schema/openapi.json``, following the served model's request bodies."""
    return OpenAPIConfig(
        title=title,
        version=package_version(),
        description=description,
        path="/schema",
        render_plugins=[FollowingJson(docs)],
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
    )
