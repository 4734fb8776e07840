"""The HTTP service: the Litestar app, its routes, the served model and the API documentation.

Web-only: the runtime's other modules never import it. Its conventions (error answers, OpenAPI with
offline docs, JSON and admin-token checks, logging) are exported for the trainer service, so both
services answer alike.
"""

from __future__ import annotations

from runtime.web.app import configure_logging, create_app, error_handlers, logging_config, openapi_config
from runtime.web.limits import header_limit
from runtime.web.openapi import ApiDocs, Body, doc_pages, error_responses
from runtime.web.routes import authorize, require_json

__all__ = [
    "ApiDocs",
    "Body",
    "authorize",
    "configure_logging",
    "create_app",
    "doc_pages",
    "error_handlers",
    "error_responses",
    "header_limit",
    "logging_config",
    "openapi_config",
    "require_json",
]
