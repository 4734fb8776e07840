"""What many tests need: a free port, one HTTP request, the real services on 127.0.0.1, waiting.

The services run as users run them (``python -m ml_matching.runtime`` / ``.trainer``), each on a
free port of its own; :func:`until` waits for a condition instead of sleeping a guessed time.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ml_matching.runtime.ledger import LedgerSender


def until(check: Callable[[], object], seconds: float = 10.0, every: float = 0.02) -> float:
    """Seconds until ``check()`` is true; fails the test if it is not within ``seconds``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"the condition did not hold within {seconds} s")
        time.sleep(every)
    return time.monotonic() - start


def instance_released(store: Any, number: int) -> None:
    """Wait for the server to end the session that held a trainer's instance number (a closed
    connection's backend exits after the client has gone, not at once), and so release it."""
    db = store.db

    def released() -> bool:
        with db.read() as tx:
            return not db.instance_alive(tx, number)

    until(released, 10)


def drop_instance_session(store: Any, number: int) -> None:
    """End, from the server's side, the session holding instance ``number``: what a database restart
    or a dropped connection does to a live trainer. Waits until its lock is gone."""
    from ml_matching.trainer.database import INSTANCE_LOCK_CLASS

    with store.db.write() as tx:
        tx.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = CAST(? AS oid) AND objid = CAST(? AS oid)",
            INSTANCE_LOCK_CLASS,
            number,
        )
    instance_released(store, number)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """One HTTP request on a fresh connection; returns (status, decoded JSON body).

    A server that goes away raises an OSError, whenever it goes: before the answer
    (ConnectionRefusedError, RemoteDisconnected) or in the middle of it (http.client's
    IncompleteRead, turned into a ConnectionError), so callers that kill servers catch one type.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        try:
            raw = response.read()
        except http.client.IncompleteRead as exc:
            raise ConnectionError(f"the server went away in the middle of its answer: {exc!r}") from exc
        try:
            return response.status, json.loads(raw or b"null")
        except ValueError:
            return response.status, raw.decode(errors="replace")
    finally:
        conn.close()


class Service:
    """A service process on a free port; ``stop`` ends it (``kill`` with SIGKILL), ``start`` again."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, port_variable: str) -> None:
        self.port = free_port()
        self.args = args
        self.env = {**os.environ, "LOG_LEVEL": "WARNING", **env, port_variable: str(self.port)}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Service:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, *self.args], env=self.env, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                if request(self.port, "GET", "/health")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.args} did not answer /health in time: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def get(self, path: str) -> Any:
        status, body = request(self.port, "GET", path)
        assert status == 200, (path, status, body)
        return body


def runtime_service(store: Path, **env: str) -> Service:
    environ = {"MODELS_DIR": str(store), "ML_SERVICE_HOST": "127.0.0.1", **env}
    return Service(
        ["-m", "ml_matching.runtime"], environ, store.parent / f"runtime-{free_port()}.log", "ML_SERVICE_PORT"
    )


@contextmanager
def running_service(store: Path, **env: str) -> Iterator[int]:
    """Start the runtime on a free port, wait until /health answers, stop it afterwards."""
    service = runtime_service(store, **env).start()
    try:
        yield service.port
    finally:
        service.stop()


def send_queued(sender: LedgerSender, seconds: float = 60) -> None:
    """Start ``sender``'s thread, wait until every row it holds is sent, and stop it (its counts
    are final then)."""
    try:
        sender.start()
        assert sender.wait_sent(seconds), sender.counts
    finally:
        sender.stop(flush_seconds=0)
