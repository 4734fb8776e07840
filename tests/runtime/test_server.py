"""The real service under uvicorn on 127.0.0.1: start-up, the seed's calls, hot swap under load."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import GB_VERSION, RF_VERSION, SEED_ROW
from tests.support import free_port, request, running_service

TOKEN = "swap-token"


def test_seed_calls_work_against_a_real_server(store: Path) -> None:
    with running_service(store) as port:
        status, health = request(port, "GET", "/health")
        assert status == 200 and health["modelLoaded"] is True
        status, body = request(port, "POST", "/predict", SEED_ROW)
        assert status == 200 and body["modelVersion"] == RF_VERSION
        assert 0 <= body["score"] <= 100
        status, body = request(port, "POST", "/predict", {**SEED_ROW, "brandFit": "high"})
        assert (status, body["detail"]) == (400, 'feature `brandFit`: expected a number, got a string "high"')


def test_bad_setting_stops_start_up_naming_the_variable(store: Path) -> None:
    env = {"MODELS_DIR": str(store), "ML_SERVICE_PORT": "not-a-port", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "ml_matching.runtime"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "ML_SERVICE_PORT" in done.stderr and "Traceback" not in done.stderr


def test_hot_swap_under_load_loses_no_request(store: Path) -> None:
    """Clients score without pause while the versions swap; after each swap, every client's next request
    (started once the load answered) is scored by the new version, and no request fails."""
    clients, swaps = 4, 20
    seen: list[list[tuple[float, int, str]]] = [[] for _ in range(clients)]
    stop = threading.Event()

    with running_service(store, ML_SERVICE_ADMIN_TOKEN=TOKEN) as port:

        def client(log: list[tuple[float, int, str]]) -> None:
            while not stop.is_set():
                started = time.monotonic()
                status, body = request(port, "POST", "/predict", SEED_ROW)
                log.append((started, status, body.get("modelVersion") or str(body)))

        def first_started_after(log: list[tuple[float, int, str]], t: float) -> tuple[float, int, str] | None:
            return next((entry for entry in list(log) if entry[0] > t), None)

        workers = [threading.Thread(target=client, args=(log,)) for log in seen]
        for w in workers:
            w.start()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            for i in range(swaps):
                target = GB_VERSION if i % 2 == 0 else RF_VERSION
                status, body = request(port, "POST", f"/models/{target}/load", headers=auth)
                assert status == 200 and body["version"] == target, body
                swapped = time.monotonic()
                deadline = swapped + 10
                while not all(first_started_after(log, swapped) for log in seen):
                    assert time.monotonic() < deadline, "clients stopped answering"
                    time.sleep(0.001)
                assert {first_started_after(log, swapped)[2] for log in seen} == {target}  # type: ignore[index]
        finally:
            stop.set()
            for w in workers:
                w.join()

    requests = [entry for log in seen for entry in log]
    assert [e for e in requests if e[1] != 200] == []
    assert len(requests) > clients * swaps


@pytest.mark.parametrize("factory", ["serving_app", "create_app"])
def test_uvicorn_factory_serves_from_the_environment(store: Path, factory: str) -> None:
    port = free_port()
    env = {**os.environ, "MODELS_DIR": str(store), "LOG_LEVEL": "WARNING"}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"ml_matching.runtime.app:{factory}",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = request(port, "GET", "/health/ready")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        assert (status, body["modelVersion"]) == (200, RF_VERSION)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
