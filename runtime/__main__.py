"""``python -m runtime``: serve on ML_SERVICE_HOST:ML_SERVICE_PORT with uvicorn (no access log)."""

from __future__ import annotations

import os
import sys

import uvicorn

from runtime.errors import SettingsError
from runtime.settings import Settings
from runtime.web import create_app


def main() -> int:
    try:
        settings = Settings.from_environ(os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,  # one line per request costs more than scoring it; see the README
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
