"""Run the real service (``python -m runtime``, uvicorn) on 127.0.0.1 for a test."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One HTTP request on a fresh connection; returns (status, decoded JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


@contextmanager
def running_service(store: Path, **env: str) -> Iterator[int]:
    """Start the service on a free port, wait until /health answers, stop it afterwards."""
    port = free_port()
    environ = {
        **os.environ,
        "MODELS_DIR": str(store),
        "ML_SERVICE_HOST": "127.0.0.1",
        "ML_SERVICE_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    log = store.parent / f"service-{port}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "runtime"], env=environ, stderr=err)
    try:
        _wait_until_up(proc, port, log)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_up(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}: {log.read_text()}")
        try:
            if request(port, "GET", "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("service did not answer /health in time")
