"""The HTTP service: the Litestar app, its routes, the served model and the API documentation.

Web-only: nothing outside ``runtime.web`` imports it, so training (which reads the artifact
contract) never loads the web framework.
"""

from __future__ import annotations

from runtime.web.app import create_app

__all__ = ["create_app"]
