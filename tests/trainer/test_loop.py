"""The learning loop with real processes on 127.0.0.1: a trainer, runtimes following ACTIVE, clients."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from ml_matching.contract import list_versions, read_active
from ml_matching.trainer.store import Store
from tests.conftest import SEED_ROW
from tests.prometheus import parse, value
from tests.support import Service, request, runtime_service, until
from tests.trainer.conftest import ADMIN, outcomes, trainer_service

WATCH = 1.0


def _job(trainer: Service, job: str, seconds: float = 120) -> dict[str, Any]:
    """The job's view once it is finished."""
    views: list[dict[str, Any]] = []

    def finished() -> bool:
        views.append(trainer.get(f"/train/{job}"))
        return views[-1]["state"] in ("succeeded", "rejected", "failed")

    until(finished, seconds, every=0.1)
    return views[-1]


def _post(trainer: Service, body: Any) -> dict[str, Any]:
    status, answer = request(trainer.port, "POST", "/outcomes", body)
    assert status == 200, answer
    return dict(answer)


class Watcher(threading.Thread):
    """Polls replicas' /health and /predict: when each first served each version; every failed request."""

    def __init__(self, replicas: list[Service]) -> None:
        super().__init__(daemon=True)
        self.replicas = replicas
        self.first_seen: list[dict[str, float]] = [{} for _ in replicas]
        self.failures: list[str] = []
        self.predictions = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for i, replica in enumerate(self.replicas):
                status, body = request(replica.port, "POST", "/predict", SEED_ROW)
                if status != 200:
                    self.failures.append(f"replica {i}: {status} {body}")
                    continue
                self.predictions += 1
                self.first_seen[i].setdefault(body["modelVersion"], time.monotonic())
            time.sleep(0.02)


def test_outcomes_retrain_and_every_replica_serves_each_promoted_version(
    tmp_path: Path, fast_config_file: Path
) -> None:
    store = tmp_path / "store"
    trainer = trainer_service(store, fast_config_file).start()
    replicas = [runtime_service(store, MODEL_WATCH_SECONDS=str(WATCH)).start() for _ in range(2)]
    rows = outcomes(200, seed=21)
    watcher = Watcher(replicas)
    try:
        # 50 outcomes queue a training, but a fifth of them are kept for evaluation: 40 rows are too few.
        early = _post(trainer, {"outcomes": rows[:50]})
        assert _job(trainer, early["job"])["result"]["reason"].endswith("rows; training needs at least 50")
        first = _post(trainer, {"outcomes": rows[50:100]})
        assert _job(trainer, first["job"])["result"]["promoted"] is True
        until(lambda: all(r.get("/health")["modelLoaded"] for r in replicas))
        watcher.start()
        jobs = {first["job"]}
        for start in range(100, 200, 10):  # a job runs while the next posts arrive and queue one
            answer = _post(trainer, {"outcomes": rows[start : start + 10]})
            jobs |= {answer["job"]} if answer.get("job") else set()
        views = [_job(trainer, job) for job in sorted(jobs)]
        final = read_active(store)
        until(lambda: all(r.get("/health")["modelVersion"] == final for r in replicas))
        until(lambda: all(final in seen for seen in watcher.first_seen))
    finally:
        watcher.stop.set()
        if watcher.is_alive():
            watcher.join()
        for service in (trainer, *replicas):
            service.stop()

    assert len(views) >= 2 and all(v["state"] == "succeeded" for v in views), views
    promoted = sorted(
        (v for v in views if v["result"]["promoted"]), key=lambda v: v["finishedAt"]
    )  # in the order ACTIVE named them
    assert promoted and promoted[-1]["result"]["modelVersion"] == final
    order = [v["result"]["modelVersion"] for v in promoted]
    for seen in watcher.first_seen:
        # Each replica served promoted versions only, never went back, and serves the last one;
        # a version superseded within one watch interval may be skipped, which is what following means.
        served = sorted(seen, key=seen.__getitem__)
        assert served == [v for v in order if v in served], (served, order)
    assert watcher.failures == [] and watcher.predictions > 10
    with Store(store / "outcomes.sqlite") as db:
        assert db.stats().total == 200


def test_a_worse_challenger_is_published_but_not_activated(tmp_path: Path, fast_config_file: Path) -> None:
    store = tmp_path / "store"
    trainer = trainer_service(store, fast_config_file, RETRAIN_EVERY="0").start()
    replica = runtime_service(store, MODEL_WATCH_SECONDS=str(WATCH)).start()
    try:
        _post(trainer, {"outcomes": outcomes(400, seed=31)})
        status, champion = request(trainer.port, "POST", "/train", None, ADMIN, timeout=120)
        assert (status, champion["promoted"]) == (200, True), champion
        assert trainer.get("/outcomes/stats")["evaluation"] >= 50
        shuffled = outcomes(300, seed=32)
        labels = [o["outcome"] for o in shuffled]
        random.Random(0).shuffle(labels)
        body = {"features": [o["features"] for o in shuffled], "outcomes": labels}
        status, answer = request(trainer.port, "POST", "/train", body, ADMIN, timeout=120)
        # ACTIVE never named the challenger, so the replica, which follows ACTIVE, has no reason to move.
        until(lambda: replica.get("/health")["modelVersion"] == champion["modelVersion"])
        served = replica.get("/health")["modelVersion"]
        metrics = parse(urlopen(f"http://127.0.0.1:{trainer.port}/metrics", timeout=10).read().decode())
    finally:
        trainer.stop()
        replica.stop()

    assert status == 200 and answer["status"] == "success" and answer["promoted"] is False, answer
    decision = answer["decision"]
    assert (
        decision["champion"] == champion["modelVersion"] and decision["rowsSource"] == "evaluation outcomes"
    )
    assert decision["candidateRocAuc"] < decision["championRocAuc"] - decision["tolerance"]
    assert decision["reason"].startswith(f"ROC-AUC {decision['candidateRocAuc']:.4f} < ")
    assert answer["modelVersion"] in list_versions(store), "a refused candidate is still published"
    assert read_active(store) == served == champion["modelVersion"]
    sidecar = json.loads((store / answer["modelVersion"] / "model.json").read_text())
    assert sidecar["gate"] == decision
    decided = "ml_matching_trainer_gate_decisions_total"
    assert value(metrics, decided, decision="promoted", reason="first_version") == 1
    assert value(metrics, decided, decision="refused", reason="worse") == 1
    assert value(metrics, "ml_matching_trainer_active_roc_auc") == decision["championRocAuc"]


def test_concurrent_clients_with_retries_store_each_outcome_once(
    tmp_path: Path, fast_config_file: Path
) -> None:
    store = tmp_path / "store"
    trainer = trainer_service(store, fast_config_file, RETRAIN_EVERY="0").start()
    failures: list[str] = []

    def client(k: int) -> None:
        for i, outcome in enumerate(outcomes(250, seed=100 + k, prefix=f"c{k}-")):
            for _ in range(2 if i % 7 == 0 else 1):  # every 7th is sent twice, as a retry would
                status, body = request(trainer.port, "POST", "/outcomes", outcome)
                if status != 200:
                    failures.append(f"{status} {body}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = trainer.get("/outcomes/stats")
    finally:
        trainer.stop()
    assert failures == []
    assert stats["total"] == 8 * 250


def test_acknowledged_outcomes_survive_a_kill_9_of_the_trainer(
    tmp_path: Path, fast_config_file: Path
) -> None:
    store = tmp_path / "store"
    trainer = trainer_service(store, fast_config_file, RETRAIN_EVERY="0").start()
    acknowledged: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for outcome in outcomes(400, seed=200 + k, prefix=f"d{k}-"):
            try:
                status, _ = request(trainer.port, "POST", "/outcomes", outcome, timeout=5)
            except OSError:
                return  # the trainer is gone
            if status == 200:
                with lock:
                    acknowledged.append(outcome["id"])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    until(lambda: len(acknowledged) >= 60)  # the clients are posting: kill the trainer among them
    trainer.stop(signal.SIGKILL)
    for t in threads:
        t.join()
    assert len(acknowledged) >= 60
    with Store(store / "outcomes.sqlite") as db:
        kept = {o.id for o in db.rows("all")}
    assert set(acknowledged) <= kept
    trainer.start()  # and the trainer starts on the same store
    try:
        assert trainer.get("/outcomes/stats")["total"] == len(kept)
    finally:
        trainer.stop()


def _children(pid: int) -> list[tuple[int, bytes]]:
    """The processes whose parent is ``pid``, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append((int(entry.name), cmdline))
    return found


def _workers(pid: int) -> list[int]:
    """The training workers of the trainer ``pid``: the children of its forkserver."""
    servers = [child for child, cmdline in _children(pid) if b"forkserver" in cmdline]
    return [worker for server in servers for worker, _ in _children(server)]


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


#: A trainer reduced to what the test below needs: a worker forked by the forkserver, as the
#: trainer's are, that watches its trainer as theirs do, then only sleeps (no progress lines).
SLEEPING_WORKER = """
import multiprocessing, time

def sit():
    from ml_matching.trainer.worker import exit_with_trainer

    exit_with_trainer()
    time.sleep(600)

if __name__ == "__main__":
    worker = multiprocessing.get_context("forkserver").Process(target=sit)
    worker.start()
    print(worker.pid, flush=True)
    time.sleep(600)
"""


def test_a_worker_ends_when_its_trainer_is_killed_even_between_progress_lines(tmp_path: Path) -> None:
    """A worker forked by the forkserver keeps the forkserver up, so its parent does not change when
    the trainer dies. A worker that watched its parent trained on, and could publish, until its next
    progress line found the pipe broken."""
    script = tmp_path / "trainer.py"
    script.write_text(SLEEPING_WORKER)
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as trainer:
        assert trainer.stdout is not None
        worker = int(trainer.stdout.readline())
        trainer.kill()
    try:
        until(lambda: _gone(worker), 30)
    finally:
        if not _gone(worker):
            os.kill(worker, signal.SIGKILL)


def _started_job(trainer: Service) -> tuple[str, int]:
    """Start a job on the stored outcomes; wait until its worker is cross-validating; (job, worker pid)."""
    status, view = request(trainer.port, "POST", "/train?wait=0", None, ADMIN)
    assert status == 202, view
    until(lambda: any("fold 1/" in line for line in trainer.get(f"/train/{view['job']}")["progress"]), 60)
    assert trainer.proc is not None
    (worker,) = _workers(trainer.proc.pid)
    return view["job"], worker


def test_a_killed_worker_fails_its_job_and_the_next_job_succeeds(
    tmp_path: Path, fast_config_file: Path
) -> None:
    store = tmp_path / "store"
    slow = tmp_path / "slow.json"  # a default-sized forest, so the job is still running when killed
    slow.write_text(json.dumps({"folds": 5, "random_forest": {"n_estimators": 300}}))
    trainer = trainer_service(store, slow, RETRAIN_EVERY="0").start()
    try:
        _post(trainer, {"outcomes": outcomes(300, seed=41)})
        job, worker = _started_job(trainer)
        os.kill(worker, signal.SIGKILL)
        view = _job(trainer, job)
        assert view["state"] == "failed"
        assert view["result"]["reason"].startswith(
            "the training worker was killed by SIGKILL (out of memory, or kill -9)"
        )
        assert list_versions(store) == [] and read_active(store) is None
        assert [p.name for p in store.iterdir() if p.name.startswith(".tmp")] == []
        assert "runningJob" not in trainer.get("/health")
        slow.write_text(fast_config_file.read_text())  # each job reads TRAIN_CONFIG when it starts
        status, answer = request(trainer.port, "POST", "/train", None, ADMIN, timeout=180)
        assert (status, answer["status"], answer["promoted"]) == (200, "success", True), answer
        assert list_versions(store) == [answer["modelVersion"]]
    finally:
        trainer.stop()


def test_a_restarted_trainer_marks_the_job_it_was_running_failed(
    tmp_path: Path, fast_config_file: Path
) -> None:
    store = tmp_path / "store"
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps({"folds": 5, "random_forest": {"n_estimators": 300}}))
    trainer = trainer_service(store, slow, RETRAIN_EVERY="0").start()
    _post(trainer, {"outcomes": outcomes(300, seed=51)})
    job, worker = _started_job(trainer)
    trainer.stop(signal.SIGKILL)
    until(lambda: _gone(worker), 10)  # the orphaned worker exits rather than go on to publish
    trainer.start()
    try:
        view = trainer.get(f"/train/{job}")
        assert view["state"] == "failed"
        assert view["result"]["reason"] == "the trainer stopped while this job was running"
        assert list_versions(store) == []
    finally:
        trainer.stop()
