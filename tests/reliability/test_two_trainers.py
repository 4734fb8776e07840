"""Two trainers on one PostgreSQL database (a real server the tests start), one artifact store.

- Outcomes and ledger rows posted to both at once, one trainer killed with ``kill -9`` and restarted
  mid-stream, the posts it could not take retried on the other (as a load balancer would): every
  acknowledged id is stored, none twice.
- Retraining triggered through both: one training job at a time across them (the advisory lock):
  the jobs' running intervals never overlap.
- A schema-2 database (the previous release) is upgraded in place.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ml_matching.contract.assignment import HASH_VERSION
from ml_matching.contract.experiment import now
from ml_matching.contract.ids import PredictionIds
from ml_matching.contract.ledger import LedgerRow
from ml_matching.trainer.database import TRAIN_LOCK
from ml_matching.trainer.schema import SCHEMA_VERSION
from ml_matching.trainer.store import Store
from tests.conftest import RF_VERSION, SEED_ROW
from tests.support import Service, request, until
from tests.trainer.conftest import outcomes, trainer_service
from tests.training.conftest import FAST_CONFIG

pytestmark = pytest.mark.slow
psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")


@pytest.fixture
def database(postgres: Any) -> str:
    return str(postgres.database())


def _trainers(store: Path, tmp_path: Path, database: str, **env: str) -> list[Service]:
    config = tmp_path / "train.json"
    config.write_text(json.dumps(FAST_CONFIG))
    return [trainer_service(store, config, tmp_path, OUTCOMES_DB=database, **env).start() for _ in range(2)]


@pytest.fixture
def pair(store: Path, tmp_path: Path, database: str) -> Iterator[list[Service]]:
    trainers = _trainers(store, tmp_path, database, RETRAIN_EVERY="0", CONTROLLER_SECONDS="0")
    yield trainers
    for t in trainers:
        t.stop()


def _post(trainers: list[Service], first: int, path: str, body: Any) -> bool:
    """Post to trainer ``first``, else to the other; True once one acknowledged it."""
    for k in (first, 1 - first):
        try:
            status, _ = request(trainers[k].port, "POST", path, body, timeout=10)
        except OSError:
            continue
        if status == 200:
            return True
    return False


def test_nothing_acknowledged_is_lost_or_doubled_when_one_trainer_is_killed(
    pair: list[Service], database: str
) -> None:
    ids = PredictionIds()
    acknowledged: dict[str, set[str]] = {"outcomes": set(), "predictions": set()}
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int) -> None:
        rng = random.Random(k)
        n = 0
        while not stop.is_set():
            n += 1
            if n % 2:
                batch = outcomes(20, seed=1000 * k + n, prefix=f"c{k}-")
                if _post(pair, k % 2, "/outcomes", {"outcomes": batch}):
                    with lock:
                        acknowledged["outcomes"] |= {o["id"] for o in batch}
            else:
                rows = [_row(ids(), rng) for _ in range(50)]
                if _post(pair, k % 2, "/predictions", {"rows": rows}):
                    with lock:
                        acknowledged["predictions"] |= {r["predictionId"] for r in rows}

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    until(lambda: len(acknowledged["outcomes"]) > 200, 30)
    pair[0].stop(signal.SIGKILL)
    until(lambda: len(acknowledged["outcomes"]) > 600, 30)
    pair[0].start()
    until(lambda: len(acknowledged["predictions"]) > 2000, 60)
    stop.set()
    for t in threads:
        t.join()
    with psycopg.connect(database) as db:
        stored_outcomes = [r[0] for r in db.execute("SELECT id FROM outcomes")]
        stored_rows = [r[0] for r in db.execute("SELECT id FROM predictions")]
    assert len(stored_outcomes) == len(set(stored_outcomes)) and len(stored_rows) == len(set(stored_rows))
    assert acknowledged["outcomes"] <= set(stored_outcomes), "an acknowledged outcome is stored"
    assert acknowledged["predictions"] <= set(stored_rows), "an acknowledged ledger row is stored"
    stats = pair[1].get("/outcomes/stats")
    assert stats["total"] == len(stored_outcomes), "both trainers count the same store"


def _row(prediction_id: str, rng: random.Random) -> dict[str, Any]:
    row = LedgerRow(prediction_id, now(), RF_VERSION, rng.random(), dict(SEED_ROW), hash=HASH_VERSION)
    return dict(msgspec.to_builtins(row))


def test_one_training_job_at_a_time_across_trainers(store: Path, tmp_path: Path, database: str) -> None:
    trainers = _trainers(
        store, tmp_path, database, RETRAIN_EVERY="50", CONTROLLER_SECONDS="0", PROMOTION_TOLERANCE="1"
    )
    try:
        jobs = []
        for k in range(3):  # 3 × 60 outcomes, through one trainer then the other: a retraining each time
            answer = request(
                trainers[k % 2].port,
                "POST",
                "/outcomes",
                {"outcomes": outcomes(60, seed=50 + k, prefix=f"t{k}-")},
            )[1]
            jobs.append((trainers[k % 2], answer["job"]))

        def final(service: Service, job: str) -> dict[str, Any]:
            return dict(service.get(f"/train/{job}"))

        for service, job in jobs:
            if job is not None:
                until(
                    lambda s=service, j=job: final(s, j)["state"] in ("succeeded", "rejected", "failed"),
                    240,
                    every=0.5,
                )
        with psycopg.connect(database) as db:
            records = [json.loads(r[0]) for r in db.execute("SELECT record FROM jobs")]
        ran = sorted((r["started_at"], r["finished_at"]) for r in records if r.get("started_at"))
        assert len(ran) >= 2, records
        for (_, end), (start, _) in itertools.pairwise(ran):
            assert end <= start, f"two training jobs ran at once: {ran}"
    finally:
        for t in trainers:
            t.stop()


def test_a_starting_trainer_leaves_a_live_trainers_job_and_reruns_a_dead_ones_retraining(
    store: Path, tmp_path: Path, database: str
) -> None:
    """A job waits for the training lock (held here, as a long job of a third trainer would). A second
    trainer starting must leave it alone; once its own trainer is killed, the next one to start marks
    it failed and queues the retraining again: its outcomes were claimed, so no later count would."""
    config = tmp_path / "train.json"
    config.write_text(json.dumps(FAST_CONFIG))
    env = {
        "OUTCOMES_DB": database,
        "RETRAIN_EVERY": "50",
        "CONTROLLER_SECONDS": "0",
        "PROMOTION_TOLERANCE": "1",
    }
    first = trainer_service(store, config, tmp_path, **env).start()
    second = trainer_service(store, config, tmp_path, **env)
    with psycopg.connect(database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (TRAIN_LOCK,))
        job = request(first.port, "POST", "/outcomes", {"outcomes": outcomes(90, seed=7)})[1]["job"]
        until(lambda: "waiting" in " ".join(first.get(f"/train/{job}")["progress"]), 30)
        second.start()
        try:
            assert second.get(f"/train/{job}")["state"] == "queued", "a live trainer's job is left alone"
            first.stop(signal.SIGKILL)
            second.stop()
            second.start()  # the first trainer is gone: its job is lost, and its retraining queued again
            lost = second.get(f"/train/{job}")
            assert (lost["state"], lost["result"]["reason"]) == (
                "failed",
                "the trainer stopped while this job was queued",
            )
            with psycopg.connect(database) as db:
                records = [
                    json.loads(r[0]) for r in db.execute("SELECT record FROM jobs ORDER BY created_at")
                ]
            assert [(r["kind"], r["state"]) for r in records] == [("auto", "failed"), ("auto", "queued")]
            again = records[1]["id"]
            holder.execute("SELECT pg_advisory_unlock(%s)", (TRAIN_LOCK,))
            until(lambda: second.get(f"/train/{again}")["state"] != "queued", 60, every=0.5)
            until(lambda: second.get(f"/train/{again}")["state"] in ("succeeded", "rejected", "failed"), 240)
            assert second.get(f"/train/{again}")["state"] == "succeeded", second.log.read_text()[-3000:]
        finally:
            second.stop()
            first.stop()


def test_a_database_of_the_previous_schema_is_upgraded(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as db:  # what release 0.2 (schema 2) made
        db.execute(
            "CREATE TABLE outcomes (seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
            "features TEXT NOT NULL, outcome INTEGER NOT NULL, evaluation INTEGER NOT NULL, received_at TEXT NOT NULL)"
        )
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, record TEXT NOT NULL, created_at TEXT NOT NULL)")
        db.execute("CREATE TABLE ml_matching_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO ml_matching_schema VALUES (2)")
        db.execute(
            "INSERT INTO outcomes (id, features, outcome, evaluation, received_at) VALUES ('o-1', %s, 1, 0, 't')",
            (json.dumps(SEED_ROW),),
        )
    with Store(database) as store:
        assert store.stats().total == 1
        with store.db.read() as tx:
            assert store.db.schema_version(tx) == SCHEMA_VERSION
            assert tx.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 0
