"""How every baseline service is run: uvicorn, one worker, no access log, on ``BENCH_HOST:BENCH_PORT``
(as the runtime is run by the benchmarks)."""

from __future__ import annotations

import os
from typing import Any

import uvicorn


def serve(app: Any) -> None:
    uvicorn.run(
        app,
        host=os.environ.get("BENCH_HOST", "127.0.0.1"),
        port=int(os.environ["BENCH_PORT"]),
        log_level="info",
        access_log=False,
    )
