"""The job runner goes on to the next job whatever a job's start or end raises: a runner that
stopped there would keep a job "running" and every later one queued, and refuse new ones as busy."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ml_matching.contract import ArtifactCorrupt, StorageFull
from ml_matching.trainer.jobs import JobRunner
from ml_matching.trainer.records import Failed, Final, JobRecord, JobSpec
from ml_matching.trainer.store import Store


class Instant(JobRunner):
    """A runner whose worker answers at once (the worker process is tested in test_loop.py)."""

    def _launch(self, job: JobRecord, spec: JobSpec) -> tuple[JobRecord, Final]:
        return job, Failed("a stand-in worker's answer")


def _quiet(*_: object) -> None:
    return None


def _raising_once(error: Exception) -> Callable[..., None]:
    calls = itertools.count()

    def call(*_: object) -> None:
        if next(calls) == 0:
            raise error

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
