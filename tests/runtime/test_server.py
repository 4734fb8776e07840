"""The real service under uvicorn on 127.0.0.1: start-up, the seed's calls, hot swap under load."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import GB_VERSION, RF_VERSION, SEED_ROW
from tests.runtime.server import request, running_service

TOKEN = "swap-token"


def test_seed_calls_work_against_a_real_server(store: Path) -> None:
    with running_service(store) as port:
        status, health = request(port, "GET", "/health")
        assert status == 200 and health["modelLoaded"] is True
        status, body = request(port, "POST", "/predict", SEED_ROW)
        assert status == 200 and body["modelVersion"] == RF_VERSION
        assert 0 <= body["score"] <= 100
        status, body = request(port, "POST", "/predict", {**SEED_ROW, "brandFit": "high"})
        assert status == 400 and "$.brandFit" in body["detail"]


def test_bad_setting_stops_start_up_naming_the_variable(store: Path) -> None:
    env = {"MODELS_DIR": str(store), "ML_SERVICE_PORT": "not-a-port", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "runtime"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "ML_SERVICE_PORT" in done.stderr and "Traceback" not in done.stderr


def test_hot_swap_under_load_loses_no_request(store: Path) -> None:
    threads, per_thread, swaps = 4, 500, 50
    failures: list[str] = []
    versions: set[str] = set()
    lock = threading.Lock()

    with running_service(store, ML_SERVICE_ADMIN_TOKEN=TOKEN) as port:

        def client() -> None:
            for _ in range(per_thread):
                status, body = request(port, "POST", "/predict", SEED_ROW)
                with lock:
                    if status != 200:
                        failures.append(f"{status}: {body}")
                    else:
                        versions.add(body["modelVersion"])

        workers = [threading.Thread(target=client) for _ in range(threads)]
        for w in workers:
            w.start()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for i in range(swaps):
            target = GB_VERSION if i % 2 == 0 else RF_VERSION
            status, body = request(port, "POST", f"/models/{target}/load", headers=auth)
            assert status == 200 and body["version"] == target, body
        for w in workers:
            w.join()

    assert failures == []
    assert versions <= {RF_VERSION, GB_VERSION}
    assert versions == {RF_VERSION, GB_VERSION}, "the swaps happened while requests were served"
