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
    once with its stack trace, and answer client mistakes without logging them.

    Litestar's own logger writes to stderr directly, not through its default queue listener: that
    starts a thread in every app made (hundreds in the tests, never stopped), and it starts it while
    ``logging.dictConfig`` holds the logging lock. A garbage collection in that new thread that ran
    a finalizer needing the lock (Dask's ``ServerNode`` removes its log handler so) hung the process
    for good, as one CI run did."""
    stderr = {"class": "logging.StreamHandler", "level": "DEBUG", "formatter": "standard"}
    # Litestar adds its queue listener unless a handler of that name is given: it is given stderr's.
    handlers = {"console": stderr, "queue_listener": stderr}
    loggers = {"litestar": {"level": "INFO", "handlers": ["console"], "propagate": False}}
    return LoggingConfig(
        configure_root_logger=False, log_exceptions="debug", handlers=handlers, loggers=loggers
    )
