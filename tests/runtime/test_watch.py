"""Replicas follow the store's ACTIVE through the verified swap; a refused version does not stop the watch."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.artifact import write_active
from tests.conftest import GB_VERSION, OTHER_VERSION, RF_VERSION
from tests.runtime.corrupt import CORRUPTIONS
from tests.runtime.server import Service, runtime_service

WATCH = "0.2"


def _until(check: Callable[[], bool], seconds: float = 5.0) -> float:
    """Seconds until ``check()`` holds (fails the test after ``seconds``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "the condition did not hold in time"
        time.sleep(0.02)
    return time.monotonic() - start


def _health(service: Service) -> dict[str, Any]:
    return dict(service.get("/health"))


def test_replicas_follow_active_and_report_what_it_names(store: Path) -> None:
    replicas = [runtime_service(store, MODEL_WATCH_SECONDS=WATCH).start() for _ in range(2)]
    try:
        assert {_health(r)["activeVersion"] for r in replicas} == {RF_VERSION}
        write_active(store, GB_VERSION)
        for r in replicas:
            _until(lambda r=r: _health(r)["modelVersion"] == GB_VERSION)
            assert _health(r)["activeVersion"] == GB_VERSION and "activeRefused" not in _health(r)
        write_active(store, OTHER_VERSION)  # another feature set: the swap changes the fields too
        for r in replicas:
            _until(lambda r=r: _health(r)["modelVersion"] == OTHER_VERSION)
    finally:
        for r in replicas:
            r.stop()


def test_a_refused_version_keeps_the_old_model_and_a_later_change_is_tried(store: Path) -> None:
    bad = store / "20260105_000000"
    shutil.copytree(store / GB_VERSION, bad)
    CORRUPTIONS["hash-mismatch"][0](bad)
    (bad / "model.json").write_text((bad / "model.json").read_text().replace(GB_VERSION, bad.name))
    replica = runtime_service(store, MODEL_WATCH_SECONDS=WATCH).start()
    try:
        write_active(store, bad.name)
        _until(lambda: "activeRefused" in _health(replica))
        health = _health(replica)
        assert health["modelVersion"] == RF_VERSION and health["activeVersion"] == bad.name
        assert health["activeRefused"].startswith("sha256: model.onnx has sha256")
        time.sleep(1.0)  # five more watch rounds: refused once, not retried
        log = replica.log.read_text()
        assert log.count(f"watch refused: {bad.name}") == 1, log
        write_active(store, GB_VERSION)
        _until(lambda: _health(replica)["modelVersion"] == GB_VERSION)
        assert "activeRefused" not in _health(replica)
    finally:
        replica.stop()


def test_a_pinned_version_never_moves(store: Path) -> None:
    replica = runtime_service(store, MODEL_WATCH_SECONDS=WATCH, MODEL_VERSION=RF_VERSION).start()
    try:
        write_active(store, GB_VERSION)
        time.sleep(1.0)
        health = _health(replica)
        assert (health["modelVersion"], health["activeVersion"]) == (RF_VERSION, GB_VERSION)
    finally:
        replica.stop()


def test_watch_seconds_zero_turns_the_watch_off(store: Path) -> None:
    replica = runtime_service(store, MODEL_WATCH_SECONDS="0").start()
    try:
        write_active(store, GB_VERSION)
        time.sleep(1.0)
        assert _health(replica)["modelVersion"] == RF_VERSION
    finally:
        replica.stop()
