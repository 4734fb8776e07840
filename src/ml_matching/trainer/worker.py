"""One training job, run in a process of its own (forked by multiprocessing's forkserver), never in
the web process.

The parent sends a :class:`JobSpec`; the worker trains, judges, publishes and (when the gate
promotes) activates, sending :class:`~ml_matching.trainer.records.Progress` messages and one final
:class:`~ml_matching.trainer.records.Published`, ``Rejected`` or ``Failed``. A worker that dies (out
of memory, ``kill -9``) sends nothing more: the parent marks the job failed. Publishing is a rename
of a complete folder, so a worker killed at any point leaves no partial version.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path

from joblib.externals.loky import get_reusable_executor

from ml_matching.contract import FeatureSet, MLMatchingError, feature_set_from_obj, write_active
from ml_matching.contract.experiment import read_experiment
from ml_matching.trainer.evaluation import evaluation_rows
from ml_matching.trainer.records import (
    Failed,
    JobSpec,
    Progress,
    Published,
    Rejected,
    TrainMetrics,
    TrainResult,
    WorkerMessage,
    encode,
)
from ml_matching.trainer.store import Store, matching
from ml_matching.training.config import load_config
from ml_matching.training.data import Dataset, parse_dataset
from ml_matching.training.errors import DataError
from ml_matching.training.pipeline import FitResult, champion, judged, publish, train_candidates

Lines = Callable[[str], None]


def run(spec: JobSpec, conn: Connection) -> None:
    """The worker process's entry point."""
    exit_with_trainer()

    def send(message: WorkerMessage) -> None:
        conn.send_bytes(encode(message))

    try:
        send(Published(train(spec, lambda line: send(Progress(line)))))
    except DataError as exc:
        send(Rejected(str(exc)))
    except MLMatchingError as exc:  # e.g. the store could not be written: the reason says why
        send(Failed(str(exc)))
    except Exception:  # a bug: the job fails with the trace; the service goes on
        send(Failed(traceback.format_exc(limit=6)))
    finally:
        conn.close()
        # joblib keeps its worker processes for reuse: end them, so this process exits now.
        get_reusable_executor().shutdown(wait=True)


def exit_with_trainer() -> None:
    """End this worker as soon as the trainer that started it is gone (a worker process only).

    A worker whose trainer died (kill -9) must not go on to publish or activate on its own: the
    restarted trainer marks its job failed. Its parent process is the forkserver, which outlives the
    trainer while a worker runs (each worker holds the pipe that keeps it up), so the worker watches
    the trainer itself: multiprocessing's parent sentinel, the pipe the job came through, whose
    other end the trainer holds until it ends.
    """
    trainer = multiprocessing.parent_process()
    if trainer is not None:
        threading.Thread(target=_exit_when_ready, args=(trainer.sentinel,), daemon=True).start()


def _exit_when_ready(sentinel: int) -> None:
    wait([sentinel])
    os._exit(1)


def train(spec: JobSpec, progress: Lines) -> TrainResult:
    """Train on the job's data, judge against ACTIVE, publish; activate when promoted."""
    fs = feature_set_from_obj(spec.features)
    root, store = Path(spec.root), Store(spec.db)
    try:
        data = _dataset(spec, fs, store, progress)
        rows = evaluation_rows(store, fs, spec.min_evaluation_rows)
    finally:
        store.close()
    progress(f"training {spec.algorithm} on {data.rows} rows ({data.source})")
    config = load_config(spec.config)
    (candidate,) = train_candidates(data, fs, [spec.algorithm], config, progress=progress, dask=spec.dask)
    candidate = judged(candidate, root, spec.tolerance, rows)
    decision = candidate.sidecar.gate
    assert decision is not None
    published = publish(root, candidate, progress)
    verdict = "promoted" if decision.promoted else "refused"
    progress(f"published {published.version}; gate: {verdict}: {decision.reason}")
    if decision.promoted and spec.activate:
        _activate(root, published.version, decision.champion, progress)
    return answer(published, data.rows)


def _activate(root: Path, version: str, judged: str | None, progress: Lines) -> None:
    """ACTIVE becomes ``version``, unless an experiment is under way: it decides what ACTIVE
    becomes (its promotion would overwrite this version, and its rollback keep one it never tested);
    or unless ACTIVE no longer names ``judged``, the champion the gate judged it against (an
    experiment promoted another while this job published): it was never compared with that one."""
    current = read_experiment(root)
    if current is not None and current.state != "stopped":
        progress(
            f"not activated: experiment {current.id} is {current.state}, and it decides what ACTIVE becomes"
        )
        return
    now = champion(root)  # ACTIVE read as the gate read it
    if now != judged:
        progress(f"not activated: ACTIVE names {now} now, and the gate judged this version against {judged}")
        return
    write_active(root, version)


def _dataset(spec: JobSpec, fs: FeatureSet, store: Store, progress: Lines) -> Dataset:
    if spec.body is not None:
        return parse_dataset(spec.body, ".json", fs, where="POST /train body", source="POST /train body")
    fitting, skipped = matching(store.rows("training", spec.snapshot), fs)
    if skipped:
        progress(f"skipped {skipped} stored outcomes recorded for another feature set")
    body = {"features": [o.features for o in fitting], "outcomes": [o.outcome for o in fitting]}
    where = "the stored training outcomes"
    return parse_dataset(json.dumps(body).encode(), ".json", fs, where=where, source=where)


def answer(result: FitResult, samples: int) -> TrainResult:
    """The original service's /train answer for a published version, with the gate's decision."""
    s = result.sidecar
    hold, cv = s.metrics.holdout, s.metrics.cross_validation
    metrics = TrainMetrics(
        hold.accuracy, hold.precision, hold.recall, hold.f1, cv.mean.accuracy, cv.std.accuracy
    )
    promoted = s.gate is not None and s.gate.promoted
    return TrainResult(metrics, samples, s.version, s.created_at, promoted, s.gate)
