"""Faults on purpose, with real processes: every one leaves the store valid and nothing half-written."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ml_matching.contract import list_versions, load_version, read_active, read_history, write_active
from ml_matching.contract.store import temp_prefix
from ml_matching.trainer.store import Store
from tests.conftest import FIXTURE_STORE, GB_VERSION, OTHER_VERSION, RF_VERSION, SEED_ROW
from tests.runtime.corrupt import CORRUPTIONS
from tests.support import request, runtime_service
from tests.trainer.conftest import outcomes, trainer_service
from tests.training.conftest import FAST_CONFIG


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    from ml_matching.contract import default_feature_set
    from ml_matching.training.synth import synthesize

    body = synthesize(300, default_feature_set(), seed=11)
    body.pop("bayes")
    path, config = tmp_path / "data.json", tmp_path / "fast.json"
    path.write_text(json.dumps(body))
    config.write_text(json.dumps(FAST_CONFIG))
    return path, config


class Fit:
    """``ml-matching fit`` in the background; its output goes to files (a killed fit's joblib
    workers may keep a pipe open for minutes)."""

    def __init__(self, data: Path, config: Path, store: Path, *extra: str) -> None:
        cmd = [
            sys.executable,
            "-m",
            "ml_matching.training",
            "fit",
            "--data",
            str(data),
            "--config",
            str(config),
        ]
        self.out, self.err = data.parent / f"fit-{id(self)}.out", data.parent / f"fit-{id(self)}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([*cmd, "--artifacts", str(store), *extra], stdout=out, stderr=err)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        code = self.proc.wait(timeout)
        return code, self.out.read_text(), self.err.read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def _store_is_valid(store: Path) -> list[str]:
    """Every listed version verifies and ACTIVE (if any) names one of them; return the versions."""
    versions = list_versions(store)
    for v in versions:
        load_version(store, v)
    active = read_active(store)
    assert active is None or active in versions
    return versions


def test_fit_killed_at_random_points_never_leaves_a_partial_version(
    tmp_path: Path, data: tuple[Path, Path]
) -> None:
    store = tmp_path / "store"
    rng = random.Random(5)
    complete = 0
    for _ in range(6):  # kills spread over a fit's whole life (about 4 s): import, fit, export, publish
        fit = Fit(*data, store)
        time.sleep(rng.uniform(0.5, 4.0))
        fit.kill()
        versions = _store_is_valid(store)
        assert len(versions) >= complete
        complete = len(versions)
    # Not every kill lands mid-write: leave one more leftover, from a writer that is surely gone.
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = f"{temp_prefix(int(gone.stdout))}abc"
    (store / dead).mkdir(parents=True)
    live = store / f"{temp_prefix()}in-progress"  # a writer still at work is left alone
    live.mkdir()
    code, _, err = Fit(*data, store).finish()
    assert code == 0, err
    assert [p.name for p in store.iterdir() if p.name.startswith(".tmp-")] == [live.name]
    assert dead in err and "left by interrupted writers" in err
    _store_is_valid(store)


def test_two_fits_at_once_and_a_runtime_following_them(tmp_path: Path, data: tuple[Path, Path]) -> None:
    store = tmp_path / "store"
    shutil.copytree(FIXTURE_STORE, store)
    replica = runtime_service(store, MODEL_WATCH_SECONDS="0.05").start()
    failures: list[str] = []
    try:
        fits = [Fit(*data, store), Fit(*data, store)]
        while any(f.proc.poll() is None for f in fits):  # paced: the fits need the cores more
            status, body = request(replica.port, "POST", "/predict", SEED_ROW)
            if status != 200:
                failures.append(f"{status} {body}")
            time.sleep(0.01)
        for f in fits:
            code, _, err = f.finish()
            assert code == 0, err
        time.sleep(0.5)
        health = replica.get("/health")
    finally:
        replica.stop()
    versions = _store_is_valid(store)
    assert len(versions) == 5, "three fixture versions and both new ones, intact"
    assert failures == []
    assert health["modelVersion"] == read_active(store) == read_history(store)[-1]


@contextmanager
def _fixture_store(tmp_path: Path) -> Iterator[Path]:
    store = tmp_path / "store"
    shutil.copytree(FIXTURE_STORE, store)
    for version in (GB_VERSION, OTHER_VERSION, RF_VERSION):  # promoted in this order: ACTIVE.log
        write_active(store, version)
    yield store


def _break(store: Path, version: str, how: str) -> None:
    if how == "deleted":
        shutil.rmtree(store / version)
    elif how == "truncated":
        CORRUPTIONS["truncated-onnx"][0](store / version)
    else:
        CORRUPTIONS["hash-mismatch"][0](store / version)


@pytest.mark.parametrize("how", ["deleted", "truncated", "tampered"])
def test_a_broken_active_version_falls_back_to_the_last_promoted_one_that_verifies(
    tmp_path: Path, how: str
) -> None:
    with _fixture_store(tmp_path) as store:
        _break(store, RF_VERSION, how)
        replica = runtime_service(store, MODEL_WATCH_SECONDS="0").start()
        try:
            health = replica.get("/health")
            ready = request(replica.port, "GET", "/health/ready")
        finally:
            replica.stop()
    assert health["modelVersion"] == OTHER_VERSION, "the most recently promoted version before it"
    assert health["fallback"].startswith(f"ACTIVE: {RF_VERSION} ")
    assert health["fallback"].endswith(
        f"serving {OTHER_VERSION}, the most recently promoted version that verifies"
    )
    assert ready[0] == 200
    assert f"start: ACTIVE: {RF_VERSION}" in replica.log.read_text()


def test_a_version_the_gate_refused_never_serves_as_a_fallback(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(FIXTURE_STORE, store)
    write_active(store, RF_VERSION)  # GB_VERSION and OTHER_VERSION were never made ACTIVE
    _break(store, RF_VERSION, "tampered")
    replica = runtime_service(store, MODEL_WATCH_SECONDS="0").start()
    try:
        health = replica.get("/health")
        status, body = request(replica.port, "GET", "/health/ready")
    finally:
        replica.stop()
    assert health["modelLoaded"] is False and status == 503
    assert body["detail"].startswith(f"no version verifies: ACTIVE: {RF_VERSION} does not verify (sha256: ")


@contextmanager
def _mounted(kind: str, target: Path, source: Path | None = None) -> Iterator[Path]:
    """A small tmpfs (``kind='tmpfs:SIZE'``) or a read-only view of ``source``; skips where it cannot mount."""
    target.mkdir(parents=True, exist_ok=True)
    if kind.startswith("tmpfs:"):
        cmd = [["mount", "-t", "tmpfs", "-o", f"size={kind[6:]}", "tmpfs", str(target)]]
    else:
        cmd = [["mount", "--bind", str(source), str(target)], ["mount", "-o", "remount,bind,ro", str(target)]]
    for c in cmd:
        done = subprocess.run(c, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", str(target)], capture_output=True)
            pytest.skip(f"this machine cannot `{' '.join(c[:3])}`: {done.stderr.strip() or done.returncode}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_read_only_store_serves_and_swaps_without_persisting(tmp_path: Path) -> None:
    with _fixture_store(tmp_path) as store, _mounted("ro", tmp_path / "ro", store) as ro:
        replica = runtime_service(ro, MODEL_WATCH_SECONDS="0", ML_SERVICE_ADMIN_TOKEN="t").start()
        try:
            assert replica.get("/health")["modelVersion"] == RF_VERSION
            status, answer = request(
                replica.port, "POST", f"/models/{GB_VERSION}/load", headers={"Authorization": "Bearer t"}
            )
            served = request(replica.port, "POST", "/predict", SEED_ROW)[1]["modelVersion"]
        finally:
            replica.stop()
        assert (status, answer["persisted"], served) == (200, False, GB_VERSION)
        assert read_active(ro) == RF_VERSION
        assert "could not write ACTIVE" in replica.log.read_text()


def test_a_trainer_on_a_read_only_store_stops_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It failed inside the server's start-up with sqlite's "unable to open database file" traceback."""
    from ml_matching.cli import main

    with _fixture_store(tmp_path) as store, _mounted("ro", tmp_path / "ro", store) as ro:
        monkeypatch.setenv("MODELS_DIR", str(ro))
        assert main(["trainer"]) == 2  # before any server starts
    assert capsys.readouterr().err == f"error: MODELS_DIR={ro}: cannot write there (Read-only file system)\n"


def test_fit_on_a_full_disk_says_so_and_leaves_nothing(tmp_path: Path, data: tuple[Path, Path]) -> None:
    with _mounted("tmpfs:40k", tmp_path / "small") as small:
        code, out, err = Fit(*data, small / "store").finish()
        entries = sorted(p.name for p in (small / "store").iterdir()) if (small / "store").exists() else []
    assert code == 1 and out == ""
    message = err.strip().splitlines()[-1]
    assert (
        message.startswith("error: ")
        and "cannot write version" in message
        and "No space left on device" in message
    )
    assert entries == [], "no partial version, no temporary folder"


def test_the_trainer_on_a_full_disk_answers_507_and_keeps_what_it_acknowledged(tmp_path: Path) -> None:
    config = tmp_path / "fast.json"
    config.write_text(json.dumps(FAST_CONFIG))
    with _mounted("tmpfs:256k", tmp_path / "small") as small:
        store = small / "store"
        trainer = trainer_service(store, config, tmp_path, RETRAIN_EVERY="0").start()
        acknowledged: list[str] = []
        statuses: set[int] = set()
        try:
            for i, outcome in enumerate(outcomes(3000, seed=61)):
                status, body = request(trainer.port, "POST", "/outcomes", outcome)
                statuses.add(status)
                if status == 200:
                    acknowledged.append(outcome["id"])
                elif status == 507:
                    assert body["error"] == "insufficient_storage" and "full" in body["detail"]
                    if i > len(acknowledged) + 20:
                        break
                else:
                    pytest.fail(f"{status} {body}")
            health = request(trainer.port, "GET", "/health")[0]
        finally:
            trainer.stop()
        assert 507 in statuses and acknowledged, statuses
        assert health == 200, "the trainer goes on"
        with Store(store / "outcomes.sqlite") as db:
            kept = {o.id for o in db.rows("all")}
        assert set(acknowledged) <= kept
