"""The Litestar kit both services share, so they answer alike.

- errors and how they are answered (:mod:`.errors`, :class:`Failures`);
- limits on what a request may send (:func:`header_limit`, :func:`entry_middleware`);
- request metrics and ``/metrics`` (:mod:`.metrics`);
- the OpenAPI document that follows the served feature set, and its offline pages (:mod:`.openapi`);
- the JSON and admin-token checks (:func:`require_json`, :func:`authorize`);
- logging, and the settings both services share (:class:`ServiceSettings`).

It imports the contract and nothing else of ml-matching.
"""

from __future__ import annotations

from ml_matching.http.errors import (
    STATUSES,
    BodyTooLarge,
    ErrorBody,
    HeadersTooLarge,
    HttpError,
    InternalError,
    ManagementDisabled,
    MethodNotAllowed,
    RouteNotFound,
    Unauthorized,
    UnsupportedMediaType,
    error_body,
    status_of,
)
from ml_matching.http.failures import Failures
from ml_matching.http.limits import before_routing, entry_middleware, header_limit
from ml_matching.http.logs import configure_logging, logging_config
from ml_matching.http.metrics import metrics_route
from ml_matching.http.openapi import (
    ApiDocs,
    Body,
    doc_pages,
    error_responses,
    openapi_config,
    package_version,
)
from ml_matching.http.requests import authorize, is_json, require_json
from ml_matching.http.settings import ServiceSettings

__all__ = [
    "STATUSES",
    "ApiDocs",
    "Body",
    "BodyTooLarge",
    "ErrorBody",
    "Failures",
    "HeadersTooLarge",
    "HttpError",
    "InternalError",
    "ManagementDisabled",
    "MethodNotAllowed",
    "RouteNotFound",
    "ServiceSettings",
    "Unauthorized",
    "UnsupportedMediaType",
    "authorize",
    "before_routing",
    "configure_logging",
    "doc_pages",
    "entry_middleware",
    "error_body",
    "error_responses",
    "header_limit",
    "is_json",
    "logging_config",
    "metrics_route",
    "openapi_config",
    "package_version",
    "require_json",
    "status_of",
]
