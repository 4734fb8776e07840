"""``ML_SERVICE_WORKERS=2``: two uvicorn worker processes on one port, real ones, on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.request import urlopen

from tests.conftest import GB_VERSION, RF_VERSION, SEED_ROW
from tests.prometheus import parse
from tests.support import request, runtime_service

TOKEN = "workers-token"
WATCH = 0.5


def served_by_worker(port: int) -> dict[str, str]:
    """pid → the version it serves, from the per-worker ``model_info`` series."""
    samples = parse(urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode())
    return {
        dict(labels)["pid"]: dict(labels)["version"]
        for (name, labels), value in samples.items()
        if name == "ml_matching_model_info" and value == 1
    }


def wait_for(condition: object, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def test_two_workers_count_together_and_all_follow_a_load(store: Path, tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_4242.db").write_bytes(b"left by an earlier start")  # must not be read
    service = runtime_service(
        store,
        ML_SERVICE_WORKERS="2",
        MODEL_WATCH_SECONDS=str(WATCH),
        ML_SERVICE_ADMIN_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(shared),
    ).start()
    port = service.port
    try:
        wait_for(lambda: len(served_by_worker(port)) == 2, 30)
        assert set(served_by_worker(port).values()) == {RF_VERSION}
        for _ in range(60):  # a connection each, so both workers answer some
            assert request(port, "POST", "/predict", SEED_ROW)[0] == 200
        samples = parse(urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode())
        predictions = ("ml_matching_predictions_total", frozenset({("version", RF_VERSION)}))
        assert samples[predictions] == 60, "counters add up across workers"

        status, answer = request(
            port, "POST", f"/models/{GB_VERSION}/load", None, {"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 200 and answer["workers"] == 2 and answer["persisted"] is True
        assert (
            answer["note"] == f"the other 1 worker(s) follow ACTIVE within MODEL_WATCH_SECONDS ({WATCH:g} s)"
        )
        took = wait_for(lambda: set(served_by_worker(port).values()) == {GB_VERSION}, WATCH + 2)
        assert len(served_by_worker(port)) == 2
        for _ in range(40):
            assert request(port, "GET", "/health")[1]["modelVersion"] == GB_VERSION
        print(f"both workers served {GB_VERSION} {took:.2f} s after the load answered")
    finally:
        service.stop()
    assert not list(shared.glob("counter_4242.db"))
