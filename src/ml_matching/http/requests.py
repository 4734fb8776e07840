"""Checks both services make of a request before its work: a JSON body, the admin token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request

from ml_matching.http.errors import ManagementDisabled, Unauthorized, UnsupportedMediaType

JSON = "application/json"


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header declares JSON (``application/json``, any ``+json``, any parameters)."""
    media = _media_type(content_type)
    return media == JSON or media.endswith("+json")


def require_json(request: Request[Any, Any, Any]) -> None:
    """Refuse a body not declared as JSON (415)."""
    raw = request.headers.get("content-type", "")
    if not is_json(raw):
        media = _media_type(raw)
        got = f"`{media}`" if media else "no content type"
        raise UnsupportedMediaType(f"expected a JSON body (Content-Type: application/json), got {got}")


def authorize(request: Request[Any, Any, Any], token: str | None) -> None:
    """Let an admin call through only with ``Authorization: Bearer <token>``."""
    if not token:
        raise ManagementDisabled("model management is disabled: set ML_SERVICE_ADMIN_TOKEN to enable it")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest takes the same time whatever prefix matches, so the token cannot be guessed by timing.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("missing or wrong bearer token (Authorization: Bearer <ML_SERVICE_ADMIN_TOKEN>)")
