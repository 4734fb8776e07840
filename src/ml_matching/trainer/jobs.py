"""Training jobs: at most one runs (in a worker process); behind it wait at most one with a body and
one on the stored outcomes.

A job's record (state, progress lines, result) is saved in the :class:`~ml_matching.trainer.store.JobStore`
at every change, so ``GET /train/{job}`` reads it and a starting service finds the jobs a trainer
left unfinished when it stopped, and marks them failed; on a shared database only the jobs whose
trainer is gone (the record names its owner), never another live trainer's. A job on the stored
outcomes waiting for its turn absorbs later retrain triggers: when it starts, it takes every outcome
stored by then.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from ml_matching.contract.experiment import now
from ml_matching.trainer.errors import JobNotFound, TrainingBusy
from ml_matching.trainer.records import Failed, Final, JobRecord, JobSpec, Progress, decode_message, ended
from ml_matching.trainer.store import Store

log = logging.getLogger("ml_matching.trainer")
SpecFor = Callable[[JobRecord, bytes | None], JobSpec]


class JobRunner:
    """Queues jobs, runs each in a worker process of its own, and keeps their records."""

    def __init__(
        self,
        store: Store,
        spec_for: SpecFor,
        on_finished: Callable[[JobRecord], None],
        owner: int | None = None,
    ) -> None:
        self._store = store
        self._owner = owner  # this trainer's instance number on a shared database
        self._spec_for = spec_for
        self._on_finished = on_finished
        self._lock = threading.Lock()
        self._running: JobRecord | None = None
        self._waiting: tuple[JobRecord, bytes | None] | None = None
        self._after: JobRecord | None = None  # a job on the stored outcomes, behind a waiting body job
        self._finished: dict[str, threading.Event] = {}
        # A worker is forked from multiprocessing's forkserver, a clean process (never the web
        # process, which runs threads) that has imported the training side once, when the first job
        # started: each later job then starts in milliseconds instead of paying about 3 s of CPU for
        # importing scikit-learn, SciPy and pandas again, nor about 1 s more for matplotlib, which
        # every job's model card draws with. A trainer that never trains imports none.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(
            [__name__, "ml_matching.trainer.worker", "ml_matching.training.plots"]
        )
        self._process: Any = None
        self._follower: threading.Thread | None = None
        self._stopping = False
        self._lost_before: set[str] = set()  # the jobs the last patient look found lost

    def recover(self, patient: bool = False) -> list[JobRecord]:
        """Mark failed the jobs a trainer that is gone left queued or running; return them.

        ``patient`` (the periodic look of a running trainer): a job seen lost for the first time is
        ended only if the next look still finds it lost. When the database restarts every trainer
        loses its instance lock at once, and takes it again within seconds (``Store.hold_instance``);
        a look in between would fail their running jobs."""
        seen: set[str] = set()

        def end(job: JobRecord) -> JobRecord:
            return ended(job, Failed(f"the trainer stopped while this job was {job.state}"), now())

        def spare(job: JobRecord) -> bool:
            seen.add(job.id)
            return job.id not in self._lost_before

        failed = self._store.end_lost_jobs(end, spare if patient else None)
        self._lost_before = seen
        for job in failed:
            log.warning("job %s: %s; marked failed", job.id, job.reason)
        return failed

    @property
    def running(self) -> str | None:
        return self._running.id if self._running else None

    @property
    def waiting(self) -> str | None:
        return self._waiting[0].id if self._waiting else None

    def submit(self, kind: str, body: bytes | None = None) -> JobRecord:
        """Queue a job (``body``: train on exactly that data; None: on the stored outcomes).

        A job on the stored outcomes joins one already waiting (it will take every outcome stored by
        the time it starts); behind a waiting job with a body, it is queued after it, and later ones
        join it. Raises TrainingBusy when a job with a body cannot queue because another waits.
        """
        with self._lock:
            if self._waiting is not None:
                waiting, _ = self._waiting
                if body is not None:
                    raise TrainingBusy(
                        f"a training ({waiting.id}) already waits for its turn behind {self.running}; "
                        "retry when it has started"
                    )
                if waiting.source == "stored":
                    return waiting
                if self._after is None:  # never another caller's job, trained on other data
                    self._after = self._new_job(kind, "stored")
                return self._after
            job = self._new_job(kind, "body" if body is not None else "stored")
            if self._running is None:
                self._start(job, body)
            else:
                self._waiting = (job, body)
            return job

    def stop(self) -> None:
        """Stop a running worker (the service is shutting down); its job is marked failed.

        A waiting job stays queued, and is marked failed when the service starts again.
        """
        with self._lock:  # a worker is started under the lock: after this, none is
            self._stopping = True
            process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(10)
        if self._follower is not None:
            self._follower.join(10)  # its job record is saved before the store closes

    def job(self, job_id: str) -> JobRecord:
        found = self._store.job(job_id)
        if found is None:
            raise JobNotFound(f"no training job `{job_id}`")
        return found

    def wait(self, job_id: str, seconds: float) -> JobRecord:
        """The job once it is finished, or as it is after ``seconds``."""
        event = self._finished.get(job_id)
        if event is not None:
            event.wait(seconds)
        return self.job(job_id)

    def _start(self, job: JobRecord, body: bytes | None) -> None:
        if not self._store.shared:  # no other trainer to wait for: running from the answer on
            job = self._save(job, state="running", started_at=now())
        self._running = job
        self._follower = threading.Thread(target=self._run, args=(job, body), daemon=True)
        self._follower.start()

    def _run(self, job: JobRecord, body: bytes | None) -> None:
        """Take the training lock (other trainers on the database wait), run the worker, follow it."""

        def waiting() -> None:
            nonlocal job
            job = self._save(job, progress=(*job.progress, "waiting for another trainer's job to finish"))

        spec: JobSpec | None = None
        final: Final = Failed("the trainer stopped while this job waited for its turn")
        try:
            with self._store.training_lock(waiting, lambda: self._stopping) as got:
                if got:
                    spec = self._spec_for(job, body)
                    job, final = self._launch(job, spec)
        except Exception as exc:  # the job fails, and the runner goes on to the next one
            log.exception("job %s: could not be run", job.id)
            final = Failed(f"the trainer could not run this job: {type(exc).__name__}: {exc}"[:300])
        # After the lock is released: finishing may start the next job, which takes it again.
        self._finish(job, final, spec)

    def _launch(self, job: JobRecord, spec: JobSpec) -> tuple[JobRecord, Final]:
        if job.state != "running":
            job = self._save(job, state="running", started_at=now())
        self._running = job
        parent, child = self._context.Pipe(duplex=False)
        # Not a daemon: a daemon process may not start children, and joblib then fits on one core.
        process = self._context.Process(target=_work, args=(spec, child), name=f"train-{job.id}")
        # Started outside the lock: start() waits while the child reads the spec (a
        # POST /train body of megabytes: seconds), and submit() takes the lock on the event loop.
        process.start()
        with self._lock:
            self._process = process
            stopped = self._stopping  # stop() ran before this worker was seen: end it here
        child.close()
        if stopped:
            process.terminate()
            process.join()
            return job, Failed("the trainer stopped as this job's worker started")
        log.info("job %s: started (%s, pid %s)", job.id, job.kind, process.pid)
        try:
            return self._follow(job, process, parent)
        except BaseException:  # the job fails; its worker must not go on training beside the next one
            process.kill()
            process.join()
            raise

    def _follow(self, job: JobRecord, process: Any, conn: Connection) -> tuple[JobRecord, Final]:
        final: Final | None = None
        while final is None:
            try:
                message = decode_message(conn.recv_bytes())
            except (EOFError, OSError):
                break
            except msgspec.MsgspecError as exc:  # never leave a job running forever over one message
                final = Failed(f"the worker's answer could not be read: {exc}")
                break
            if isinstance(message, Progress):
                job = self._save(job, progress=(*job.progress, message.line))
            else:
                final = message  # the answer is in; the pipe's EOF may wait for the worker's helpers
        process.join(30)
        if process.is_alive():  # a worker that does not exit after its answer is ended
            process.kill()
            process.join()
        return job, final or Failed(_death(process.exitcode))

    def _finish(self, job: JobRecord, final: Final, spec: JobSpec | None) -> None:
        try:
            job = self._save(ended(job, final, now()))
            reason = f": {job.reason}"[:300] if job.reason else ""
            log.info("job %s: %s%s", job.id, job.state, reason)
            if job.state == "succeeded" and spec is not None and spec.snapshot is not None:
                self._store.mark_trained(spec.snapshot)
            self._on_finished(job)
        except Exception:  # what failed is logged; the runner must still take the next job
            log.exception("job %s: finishing it failed", job.id)
        self._next(job.id)

    def _next(self, finished: str) -> None:
        """Job ``finished`` is done: tell its waiters, and start the job that waits, if any."""
        with self._lock:
            self._running = None
            self._finished.pop(finished).set()
            if self._waiting is not None and not self._stopping:
                waiting, body = self._waiting
                self._waiting = None
                self._start(waiting, body)
                if self._after is not None:
                    self._waiting, self._after = (self._after, None), None

    def _new_job(self, kind: str, source: str) -> JobRecord:
        """A queued job's record, saved, with the event its waiters wait on."""
        job = JobRecord(uuid.uuid4().hex[:16], kind, source, "queued", now(), owner=self._owner)
        self._store.save_job(job)
        self._finished[job.id] = threading.Event()
        return job

    def _save(self, job: JobRecord, **changes: Any) -> JobRecord:
        job = msgspec.structs.replace(job, **changes) if changes else job
        self._store.save_job(job)
        return job


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = " (out of memory, or kill -9)" if -code == signal.SIGKILL else ""
        whole = "versions are published whole or not at all"
        return f"the training worker was killed by {name}{why} before it finished ({whole})"
    return f"the training worker exited with code {code} without a result"


def _work(spec: JobSpec, conn: Connection) -> None:
    """The worker process's entry point. The training side (scikit-learn, SciPy, pandas) is imported
    here, in the forkserver's children (which have it preloaded): the web process never imports it,
    and starts in a third of the time."""
    from ml_matching.trainer.worker import run

    run(spec, conn)
