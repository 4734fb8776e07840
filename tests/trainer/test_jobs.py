"""The job runner goes on to the next job whatever a job's start or end raises: a runner that
stopped there would keep a job "running" and every later one queued, and refuse new ones as busy.
A starting trainer queues again a retraining the last one never finished."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ml_matching.contract import ArtifactCorrupt, StorageFull
from ml_matching.contract.experiment import now
from ml_matching.trainer import service
from ml_matching.trainer.jobs import JobRunner
from ml_matching.trainer.records import Failed, Final, JobRecord, JobSpec, decode_record
from ml_matching.trainer.service import Trainer
from ml_matching.trainer.settings import TrainerSettings
from ml_matching.trainer.store import Store
from tests.support import drop_instance_session, instance_released, until
from tests.trainer.conftest import outcomes


class Instant(JobRunner):
    """A runner whose worker answers at once (the worker process is tested in test_loop.py)."""

    def _launch(self, job: JobRecord, spec: JobSpec) -> tuple[JobRecord, Final]:
        return job, Failed("a stand-in worker's answer")


def _quiet(*_: object) -> None:
    return None


def _raising_once(error: Exception, then: Callable[..., Any] = lambda *_: None) -> Callable[..., Any]:
    """Raises ``error`` at the first call, then calls ``then``."""
    calls = itertools.count()

    def call(*args: Any) -> Any:
        if next(calls) == 0:
            raise error
        return then(*args)

    return call


@pytest.mark.parametrize("where", ["finishing", "starting"])
def test_a_job_that_raises_as_it_starts_or_ends_does_not_stop_the_next(tmp_path: Path, where: str) -> None:
    # Finishing: with PROMOTION=experiment, entering the experiment verifies ACTIVE, which may raise.
    error = ArtifactCorrupt("sha256", "ACTIVE's model.onnx does not match its sidecar")
    raising = _raising_once(error)
    spec_for, on_finished = (raising, _quiet) if where == "starting" else (_quiet, raising)
    runner = Instant(Store(tmp_path / "t.sqlite"), spec_for, on_finished)
    first = runner.submit("auto")
    second = runner.submit("manual", b"{}")  # waits behind the first
    assert runner.wait(first.id, 10).state == "failed"
    assert runner.wait(second.id, 10).reason == "a stand-in worker's answer", "the next job ran"
    third = runner.submit("manual", b"{}")  # not refused as busy
    assert runner.wait(third.id, 10).state == "failed"
    assert (runner.running, runner.waiting) == (None, None)
    if where == "starting":
        assert "ArtifactCorrupt" in str(runner.job(first.id).reason)


class FollowingFails(JobRunner):
    """A runner whose following of its worker raises (a progress line that cannot be saved)."""

    def _follow(self, job: JobRecord, process: Any, conn: Any) -> tuple[JobRecord, Final]:
        self.worker = process
        raise StorageFull("database or disk is full")


def test_a_worker_whose_job_failed_while_it_ran_is_ended(tmp_path: Path) -> None:
    """Left running, it would train beside the next job and might still publish a version."""
    spec = JobSpec("j", str(tmp_path / "store"), str(tmp_path / "t.sqlite"), [], "random_forest", 0.01, 50)
    runner = FollowingFails(Store(tmp_path / "t.sqlite"), lambda *_: spec, _quiet)
    job = runner.submit("manual", b"{}")
    assert runner.wait(job.id, 30).state == "failed"
    assert not runner.worker.is_alive() and runner.worker.exitcode is not None


@pytest.mark.parametrize("every", ["50", "0"])
def test_a_retraining_the_last_trainer_never_finished_is_queued_again(
    store: Path, tmp_path: Path, every: str
) -> None:
    """Its outcomes were claimed when it was queued, so no later count of new ones would retrain on
    them: the starting trainer queues it again (when retraining is on); other lost jobs only fail."""
    database = tmp_path / "t.sqlite"
    with Store(database) as kept:
        kept.save_job(JobRecord("lost-auto", "auto", "stored", "running", now()))
        kept.save_job(JobRecord("lost-manual", "manual", "body", "queued", now()))
    env = {
        "MODELS_DIR": str(store),
        "OUTCOMES_DB": str(database),
        "RETRAIN_EVERY": every,
        "CONTROLLER_SECONDS": "0",
    }
    trainer = Trainer(TrainerSettings.from_environ(env))
    trainer.start()
    try:
        assert {trainer.runner.job(j).state for j in ("lost-auto", "lost-manual")} == {"failed"}
        again = trainer.runner.running
        if every == "0":
            assert again is None
            return
        assert again is not None and trainer.runner.job(again).kind == "auto"
        done = trainer.runner.wait(again, 120)  # no outcomes stored: the worker rejects the data
        assert done.state == "rejected" and "training needs at least" in str(done.reason)
    finally:
        trainer.stop()


@pytest.mark.parametrize("failing", ["claim_retrain", "save_job"])
def test_outcomes_stored_are_answered_as_stored_when_their_retraining_cannot_be_queued(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The disk filled between the outcomes' commit and the retraining's claim or job: the caller was
    told 507 for outcomes that were stored, and would resend them (stored twice, without ids)."""
    env = {"MODELS_DIR": str(store), "OUTCOMES_DB": str(tmp_path / "t.sqlite"), "RETRAIN_EVERY": "50"}
    trainer = Trainer(TrainerSettings.from_environ({**env, "CONTROLLER_SECONDS": "0"}))
    trainer.start()
    try:
        real = getattr(trainer.store, failing)
        monkeypatch.setattr(trainer.store, failing, _raising_once(StorageFull("the disk is full"), real))
        body = json.dumps(
            {"outcomes": [{k: v for k, v in o.items() if k != "id"} for o in outcomes(60, seed=7)]}
        )
        answer = trainer.add_outcomes(body.encode())
        assert (answer.stored, answer.total, answer.job) == (60, 60, None)
        # The next outcome stored queues the retraining the 60 made due: claimed or not, it is owed.
        one = json.dumps({"outcomes": [outcomes(1, seed=8)[0]]})
        assert trainer.add_outcomes(one.encode()).job is not None
    finally:
        trainer.stop()


class Gated(JobRunner):
    """A runner whose jobs each wait for the test to let them finish, in the order they launched."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.launched: list[str] = []
        self.go = threading.Semaphore(0)

    def _launch(self, job: JobRecord, spec: JobSpec) -> tuple[JobRecord, Final]:
        self.launched.append(job.id)
        self.go.acquire()
        return job, Failed("a stand-in worker's answer")


def test_a_training_on_the_stored_outcomes_never_answers_with_another_callers_job(tmp_path: Path) -> None:
    """Behind a waiting job with a body, a job on the stored outcomes was answered with that body
    job: the caller followed another client's training on other data, and its own ran unseen."""
    runner = Gated(Store(tmp_path / "t.sqlite"), _quiet, _quiet)
    first = runner.submit("manual", b"{}")
    theirs = runner.submit("manual", b"{}")  # waits, with its own data
    mine = runner.submit("manual")
    assert mine.id not in (first.id, theirs.id) and (mine.source, mine.state) == ("stored", "queued")
    assert runner.submit("auto").id == mine.id, "a later one on the stored outcomes joins it"
    for _ in range(3):
        runner.go.release()
    assert runner.wait(mine.id, 10).state == "failed"
    assert runner.launched == [first.id, theirs.id, mine.id]


def test_a_periodic_look_ends_a_lost_job_only_if_the_next_look_finds_it_lost_too(postgres: Any) -> None:
    """A database restart ends every trainer's instance session at once, and each takes its number
    again within seconds: a look in between must not fail their running jobs. A job whose trainer
    really died is ended one look later; a starting trainer (not patient) ends it at once."""
    pytest.importorskip("psycopg")
    database = str(postgres.database())
    with Store(database) as mine, Store(database) as dead, Store(database) as restarted:
        runner = Instant(mine, _quiet, _quiet, mine.claim_instance())
        gone = dead.claim_instance()
        dead.save_job(JobRecord("dead", "auto", "stored", "running", now(), owner=gone))
        number = restarted.claim_instance()
        assert number is not None and gone is not None
        restarted.save_job(JobRecord("back", "manual", "stored", "running", now(), owner=number))
        drop_instance_session(mine, number)
        dead.close()
        instance_released(mine, gone)
        assert runner.recover(patient=True) == [], "first seen lost: left for the next look"
        assert restarted.hold_instance()
        assert [j.id for j in runner.recover(patient=True)] == ["dead"]
        assert mine.job("back").state == "running", "its trainer took its number again"
        drop_instance_session(mine, number)
        assert [j.id for j in runner.recover()] == ["back"], "a starting trainer does not wait"


def test_a_running_trainer_on_a_shared_database_takes_up_what_a_dead_one_left(
    store: Path, postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without looking again while it runs, a trainer would leave the job of one that died after it
    started 'queued' until some trainer restarted, and its claimed retraining unrun."""
    pytest.importorskip("psycopg")
    monkeypatch.setattr(service, "JOB_RECOVERY_SECONDS", 0.2)
    database = str(postgres.database())
    other = Store(database)
    other.save_job(JobRecord("theirs", "auto", "stored", "queued", now(), owner=other.claim_instance()))
    env = {
        "MODELS_DIR": str(store),
        "OUTCOMES_DB": database,
        "RETRAIN_EVERY": "50",
        "CONTROLLER_SECONDS": "0",
    }
    trainer = Trainer(TrainerSettings.from_environ(env))
    trainer.start()
    try:
        time.sleep(0.5)
        assert trainer.runner.job("theirs").state == "queued", "a live trainer's job is left alone"
        other.close()  # that trainer dies
        until(lambda: trainer.runner.job("theirs").state == "failed", 15)

        def jobs() -> list[tuple[str, str]]:
            with trainer.store.db.read() as tx:
                records = [decode_record(r[0]) for r in tx.execute("SELECT record FROM jobs").fetchall()]
            return sorted((j.id, j.kind) for j in records)

        until(lambda: len(jobs()) == 2, 15)  # the claimed retraining, queued again
        assert [kind for job, kind in jobs() if job != "theirs"] == ["auto"]
    finally:
        trainer.stop()
        other.close()


def test_a_promoted_version_is_activated_only_over_the_champion_it_was_judged_against(store: Path) -> None:
    """A job judges its version against ACTIVE, then publishes (seconds: the card is drawn). When an
    experiment promoted another version meanwhile, this one was never compared with it."""
    from ml_matching.contract import read_active, write_active
    from ml_matching.trainer.worker import _activate
    from tests.conftest import GB_VERSION, OTHER_VERSION, RF_VERSION

    said: list[str] = []
    _activate(store, GB_VERSION, RF_VERSION, said.append)
    assert (read_active(store), said) == (GB_VERSION, [])
    write_active(store, OTHER_VERSION)  # promoted while a job judged against GB
    _activate(store, RF_VERSION, GB_VERSION, said.append)
    assert read_active(store) == OTHER_VERSION
    assert said == [
        f"not activated: ACTIVE names {OTHER_VERSION} now, and the gate judged this version against {GB_VERSION}"
    ]
