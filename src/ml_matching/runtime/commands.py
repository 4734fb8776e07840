"""``ml-matching serve`` (and ``python -m ml_matching.runtime``): serve the store with uvicorn.

Settings come from the environment (``--help`` lists them). With ``ML_SERVICE_WORKERS`` > 1,
uvicorn runs that many worker processes on the one port, each building the app from the
environment; their metrics are shared through prometheus-client's multiprocess mode, in a folder
made fresh for this start (``PROMETHEUS_MULTIPROC_DIR`` when it is set, emptied first; else a
temporary folder removed at exit).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ml_matching.contract.commandline import Command, Handler, environment_epilog
from ml_matching.runtime.settings import Settings

MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
APP_FACTORY = "ml_matching.runtime.app:create_app"


def _serve(parser: argparse.ArgumentParser) -> Handler:
    parser.epilog = environment_epilog(Settings)
    return serve


def serve(_: argparse.Namespace) -> int:
    import uvicorn  # the server is imported by the command that runs it, not by --help

    settings = Settings.from_environ(os.environ)
    many = settings.workers > 1
    with metrics_folder(settings.metrics_dir) if many else contextlib.nullcontext():
        if many:
            target: object = APP_FACTORY  # each worker imports the factory and reads the environment
        else:
            from ml_matching.runtime.app import create_app

            target = create_app(settings)
        uvicorn.run(
            target,  # type: ignore[arg-type]
            factory=many,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            access_log=False,  # one line per request costs more than scoring it (bench/)
        )
    return 0


@contextlib.contextmanager
def metrics_folder(given: Path | None) -> Iterator[Path]:
    """A fresh folder for the workers' shared metrics, named in the environment they inherit."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        for stale in given.glob("*.db"):  # a previous start's counters must not be added to ours
            stale.unlink()
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="ml-matching-metrics-"))
    os.environ[MULTIPROC] = str(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


SERVE = Command(
    "serve",
    "serve the artifact store over HTTP (Litestar + onnxruntime); settings from the environment",
    _serve,
    description="Serve the version ACTIVE names (or MODEL_VERSION) and follow ACTIVE; "
    "the environment variables below configure it.",
)
COMMANDS = (SERVE,)
