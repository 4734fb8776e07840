"""Replicas follow the store's ACTIVE through the verified swap; a refused version does not stop the watch.

Two real replicas show that following works across processes; what must *not* happen (a refused
version retried, a pinned or unwatched replica moving) is shown by calling ``ActiveWatch.check()``
directly, as many rounds as wanted, with no time to wait for.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from ml_matching.contract import read_active, write_active
from ml_matching.runtime import ActiveWatch, ModelService, Settings, create_app
from tests.conftest import GB_VERSION, OTHER_VERSION, RF_VERSION
from tests.runtime.corrupt import CORRUPTIONS
from tests.support import Service, runtime_service, until

WATCH = "0.2"


def _health(service: Service) -> dict[str, Any]:
    return dict(service.get("/health"))


def test_replicas_follow_active_and_report_what_it_names(store: Path) -> None:
    replicas = [runtime_service(store, MODEL_WATCH_SECONDS=WATCH).start() for _ in range(2)]
    try:
        assert {_health(r)["activeVersion"] for r in replicas} == {RF_VERSION}
        write_active(store, GB_VERSION)
        for r in replicas:
            until(lambda r=r: _health(r)["modelVersion"] == GB_VERSION)
            assert _health(r)["activeVersion"] == GB_VERSION and "activeRefused" not in _health(r)
        write_active(store, OTHER_VERSION)  # another feature set: the swap changes the fields too
        for r in replicas:
            until(lambda r=r: _health(r)["modelVersion"] == OTHER_VERSION)
    finally:
        for r in replicas:
            r.stop()


def _bad_version(store: Path) -> str:
    bad = store / "20260105_000000"
    shutil.copytree(store / GB_VERSION, bad)
    CORRUPTIONS["hash-mismatch"][0](bad)
    (bad / "model.json").write_text((bad / "model.json").read_text().replace(GB_VERSION, bad.name))
    return bad.name


def test_a_refused_version_is_tried_once_and_a_later_change_is_tried(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = ModelService(Settings(models_dir=store))
    service.start()
    watch = ActiveWatch(service, 5.0)
    bad = _bad_version(store)
    write_active(store, bad)
    with caplog.at_level(logging.WARNING, logger="ml_matching"):
        for _ in range(5):
            watch.check()
    assert service.version == RF_VERSION
    assert watch.refused is not None and watch.refused[0] == bad
    assert watch.refused[1].startswith("sha256: model.onnx has sha256")
    assert [r.message for r in caplog.records].count(
        f"watch refused: {bad}: {watch.refused[1]} (still serving {RF_VERSION})"
    ) == 1
    write_active(store, GB_VERSION)
    watch.check()
    assert service.version == GB_VERSION


def test_health_says_why_active_is_not_served(store: Path) -> None:
    settings = Settings(models_dir=store, model_watch_seconds=3600)
    app = create_app(settings)
    with TestClient(app) as client:
        bad = _bad_version(store)
        write_active(store, bad)
        app.state.watch.check()
        health = client.get("/health").json()
        assert (health["modelVersion"], health["activeVersion"]) == (RF_VERSION, bad)
        assert health["activeRefused"].startswith("sha256: model.onnx has sha256")
        write_active(store, GB_VERSION)
        app.state.watch.check()
        health = client.get("/health").json()
        assert health["modelVersion"] == GB_VERSION and "activeRefused" not in health


@pytest.mark.parametrize(
    "settings",
    [
        {"model_version": RF_VERSION, "model_watch_seconds": 0.01},  # a pin never moves
        {"model_watch_seconds": 0},  # 0 turns the watch off
    ],
    ids=["pinned", "watch-off"],
)
def test_a_replica_that_does_not_follow_has_no_watch(store: Path, settings: dict[str, Any]) -> None:
    app = create_app(Settings(models_dir=store, **settings))
    assert app.state.watch is None
    with TestClient(app) as client:
        write_active(store, GB_VERSION)
        health = client.get("/health").json()
        assert (health["modelVersion"], health["activeVersion"]) == (RF_VERSION, GB_VERSION)


def test_a_refused_version_stays_refused_while_another_file_is_unreadable(store: Path) -> None:
    """A version ACTIVE names that failed verification is not verified again at every look because
    EXPERIMENT cannot be read: the two are remembered apart."""
    service = ModelService(Settings(models_dir=store))
    service.start()
    watch = ActiveWatch(service, 5.0)
    write_active(store, _bad_version(store))
    (store / "EXPERIMENT").write_text("{not json")
    loads: list[str] = []
    build = service._build

    def counted(version: str) -> Any:
        loads.append(version)
        return build(version)

    service._build = counted  # type: ignore[method-assign]
    for _ in range(5):
        watch.check()
    assert len(loads) == 1 and service.version == RF_VERSION


def test_an_active_file_that_is_not_text_is_named_and_the_watch_goes_on(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(models_dir=store, model_watch_seconds=0.02))
    with TestClient(app) as client, caplog.at_level(logging.WARNING, logger="ml_matching"):
        (store / "ACTIVE").write_bytes(b"\xff\xfe2026")
        until(lambda: any("ACTIVE is not UTF-8 text" in r.message for r in caplog.records))
        assert client.get("/health").json()["modelVersion"] == RF_VERSION
        write_active(store, GB_VERSION)
        until(lambda: client.get("/health").json()["modelVersion"] == GB_VERSION)


def test_the_watch_goes_on_after_a_look_that_raises_what_it_does_not_expect(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(models_dir=store, model_watch_seconds=0.02))
    watch = app.state.watch
    check, looks = watch.check, itertools.count()

    def second_look_broken() -> None:  # the first is the start-up's
        if next(looks) == 1:
            raise RuntimeError("a bug in one look")
        check()

    watch.check = second_look_broken
    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="ml_matching"):
        until(lambda: any("watch: following the store failed" in r.message for r in caplog.records))
        write_active(store, GB_VERSION)
        until(lambda: client.get("/health").json()["modelVersion"] == GB_VERSION)


def test_the_watcher_decides_again_under_the_load_lock(store: Path) -> None:
    """It read ACTIVE = GB; before it swapped, an admin loaded OTHER and wrote ACTIVE: the older
    decision must not undo the newer swap."""
    service = ModelService(Settings(models_dir=store))
    service.start()
    service.load(OTHER_VERSION)  # the admin's, while the watcher was about to load GB
    service.follow_active(GB_VERSION)
    assert (service.version, read_active(store)) == (OTHER_VERSION, OTHER_VERSION)
    write_active(store, GB_VERSION)
    service.follow_active(GB_VERSION)  # what ACTIVE names now is followed
    assert service.version == GB_VERSION


def test_a_load_that_could_not_write_active_stands_until_active_changes(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only store: the admin's swap answers persisted false and must not be undone by the
    watcher at its next look (ACTIVE still names the version before it)."""
    service = ModelService(Settings(models_dir=store))
    service.start()
    watch = ActiveWatch(service, 5.0)

    def read_only(root: Path, version: str) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("ml_matching.runtime.service.write_active", read_only)
    assert not service.load(GB_VERSION).persisted
    for _ in range(3):
        watch.check()
    assert (service.version, read_active(store)) == (GB_VERSION, RF_VERSION)
    monkeypatch.undo()
    write_active(store, OTHER_VERSION)  # a promotion by the trainer: followed as ever
    watch.check()
    assert service.version == OTHER_VERSION


def test_an_unwritten_swap_stands_only_until_active_moves(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACTIVE moved away and back to the version the unwritten swap stood over: it is followed (a
    stale memory of the swap kept the replica on it, silently)."""
    service = ModelService(Settings(models_dir=store))
    service.start()
    watch = ActiveWatch(service, 5.0)
    monkeypatch.setattr("ml_matching.runtime.service.write_active", _read_only)
    assert not service.load(GB_VERSION).persisted  # stands over RF_VERSION
    monkeypatch.undo()
    write_active(store, _bad_version(store))  # refused: the swap stays, ACTIVE has moved
    watch.check()
    assert service.version == GB_VERSION
    write_active(store, RF_VERSION)  # a rollback to what the swap stood over
    watch.check()
    assert service.version == RF_VERSION
    monkeypatch.setattr("ml_matching.runtime.service.write_active", _read_only)
    assert not service.load(GB_VERSION).persisted
    monkeypatch.undo()
    write_active(store, GB_VERSION)  # the operator makes the swap stick...
    watch.check()
    write_active(store, RF_VERSION)  # ...and later rolls back
    watch.check()
    assert service.version == RF_VERSION


def _read_only(root: Path, version: str) -> None:
    raise OSError(30, "Read-only file system")
