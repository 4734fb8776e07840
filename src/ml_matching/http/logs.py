"""Logging of both services: one stderr handler on the ``ml_matching`` logger, no access log."""

from __future__ import annotations

import logging
import sys

from litestar.logging import LoggingConfig

log = logging.getLogger("ml_matching")


def configure_logging(level: int) -> None:
    """One stderr handler on the ``ml_matching`` logger (idempotent)."""
    log.setLevel(level)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.propagate = False


def logging_config() -> LoggingConfig:
    """Litestar logs no exception itself: the services' error handlers see every one, log each bug
    once with its stack trace, and answer client mistakes without logging them."""
    return LoggingConfig(configure_root_logger=False, log_exceptions="debug")
