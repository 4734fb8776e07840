"""The HTTP service: the Litestar app, its routes, the served model and the API documentation.

Web-only: the runtime's other modules never import it. Its conventions (error answers, OpenAPI with
offline docs, JSON and admin-token checks, logging) are exported for the trainer service, so both
services answer alike.
"""

from __future__ import annotations

from runtime.web.app import configure_logging, create_app, entry_middleware, openapi_config
from runtime.web.failures import error_handlers, logging_config
from runtime.web.limits import before_routing
from runtime.web.metrics import metrics_route
from runtime.web.openapi import ApiDocs, Body, doc_pages, error_responses
from runtime.web.routes import authorize, require_json

__all__ = [
    "ApiDocs",
    "Body",
    "authorize",
    "before_routing",
    "configure_logging",
    "create_app",
    "doc_pages",
    "entry_middleware",
    "error_handlers",
    "error_responses",
    "logging_config",
    "metrics_route",
    "openapi_config",
    "require_json",
]
