"""``python -m runtime``: serve on ML_SERVICE_HOST:ML_SERVICE_PORT with uvicorn (no access log).

With ``ML_SERVICE_WORKERS`` > 1, uvicorn runs that many worker processes on the one port, each
building the app from the environment; their metrics are shared through prometheus-client's
multiprocess mode, in a folder made fresh for this start (``PROMETHEUS_MULTIPROC_DIR`` when it is
set, emptied first; else a temporary folder removed at exit).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from runtime.errors import SettingsError
from runtime.settings import Settings
from runtime.web import create_app

MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"


def main() -> int:
    try:
        settings = Settings.from_environ(os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with metrics_folder() if settings.workers > 1 else contextlib.nullcontext():
        uvicorn.run(
            # Several workers each import the factory and read the same environment.
            "runtime.web.app:create_app" if settings.workers > 1 else create_app(settings),
            factory=settings.workers > 1,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            access_log=False,  # one line per request costs more than scoring it; see the README
        )
    return 0


@contextlib.contextmanager
def metrics_folder() -> Iterator[Path]:
    """A fresh folder for the workers' shared metrics, named in the environment they inherit."""
    given = os.environ.get(MULTIPROC)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # a previous start's counters must not be added to ours
            stale.unlink()
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="ml-matching-metrics-"))
    os.environ[MULTIPROC] = str(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
