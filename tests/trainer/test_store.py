"""The trainer's store, against SQLite and a real PostgreSQL alike: the evaluation share, the retrain
trigger, conflicts, concurrent writers, jobs that outlive the process; and the migrations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from ml_matching.contract.experiment import now
from ml_matching.trainer.database import INSTANCE_LOCK_CLASS
from ml_matching.trainer.errors import OutcomeConflict
from ml_matching.trainer.records import JobRecord, TrainMetrics, TrainResult
from ml_matching.trainer.schema import SCHEMA_VERSION
from ml_matching.trainer.store import Outcome, PredictionOutcome, Store, is_evaluation
from tests.support import drop_instance_session, instance_released


def _outcome(i: int, outcome: bool = True) -> Outcome:
    return Outcome(f"id-{i}", {"a": i / 1000, "b": 0.5}, outcome)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store(database_url) as s:
        yield s


def test_the_evaluation_share_is_a_stable_function_of_the_id() -> None:
    ids = [f"c-{i}" for i in range(5000)]
    share = sum(is_evaluation(i, 0.2) for i in ids) / len(ids)
    assert 0.18 < share < 0.22
    assert [is_evaluation(i, 0.2) for i in ids] == [is_evaluation(i, 0.2) for i in ids]
    assert not any(is_evaluation(i, 0.0) for i in ids)


def test_an_outcome_never_moves_between_training_and_evaluation(store: Store) -> None:
    store.add([_outcome(i) for i in range(300)], evaluation_share=0.2)
    before = {o.id for o in store.rows("evaluation")}
    store.add(
        [_outcome(i) for i in range(300, 400)], evaluation_share=0.5
    )  # a new share applies to new ones only
    after = {o.id for o in store.rows("evaluation") if int(o.id[3:]) < 300}
    assert before == after and 40 < len(before) < 80
    training = {o.id for o in store.rows("training")}
    assert not training & before and len(training) + len({o.id for o in store.rows("evaluation")}) == 400


def test_retraining_is_claimed_once_per_fifty_new_outcomes(store: Store) -> None:
    store.add([_outcome(i) for i in range(49)], 0.2)
    assert store.claim_retrain(50) is None
    store.add([_outcome(49)], 0.2)
    assert store.claim_retrain(50) == 50 and store.claim_retrain(50) is None
    store.add([_outcome(i) for i in range(50, 175)], 0.2)
    assert store.claim_retrain(50) == 175, "one claim for everything since the last"
    assert store.claim_retrain(0) is None, "0 turns automatic retraining off"


def test_retraining_counts_outcomes_not_sequence_numbers(store: Store) -> None:
    """PostgreSQL gives back no number a rolled-back insert took: a call refused after its plain
    outcomes were inserted leaves a gap, which must not count as outcomes."""
    store.add([PredictionOutcome("p-1", True)], 0.2)  # waits for its prediction
    with pytest.raises(OutcomeConflict):
        store.add([*(_outcome(i) for i in range(40)), PredictionOutcome("p-1", False)], 0.2)
    store.add([_outcome(i) for i in range(100, 109)], 0.2)
    assert (store.claim_retrain(10), store.unclaimed()) == (None, 9)
    store.add([_outcome(109)], 0.2)
    assert store.claim_retrain(10) == store.stats().last_seq and store.unclaimed() == 0


def test_untrained_counts_what_no_training_used(store: Store) -> None:
    store.add([_outcome(i) for i in range(80)], 0.2)
    store.mark_trained(60)
    store.add([_outcome(i) for i in range(80, 90)], 0.2)
    assert store.stats().untrained == 30
    store.mark_trained(10)  # the mark never goes back
    assert store.stats().untrained == 30


def test_a_conflict_stores_nothing_of_its_call(store: Store) -> None:
    store.add([_outcome(1)], 0.2)
    with pytest.raises(OutcomeConflict, match="outcome `id-1` is already stored"):
        store.add([_outcome(2), _outcome(1, outcome=False)], 0.2)
    assert store.stats().total == 1


def test_concurrent_writers_with_retries_store_each_outcome_once(store: Store) -> None:
    def client(k: int) -> None:
        for i in range(100):
            batch = [_outcome(k * 100 + i)]
            store.add(batch, 0.2)
            if i % 10 == 0:
                store.add(batch, 0.2)  # a retry of the same call

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.stats().total == 800
    assert len({o.id for o in store.rows("all")}) == 800


def _failed(job: JobRecord) -> JobRecord:
    return msgspec.structs.replace(job, state="failed", reason="lost")


def _released(store: Store, number: int | None) -> None:
    if number is not None:
        instance_released(store, number)


def test_a_starting_trainer_ends_only_the_jobs_whose_trainer_is_gone(database_url: str) -> None:
    """On PostgreSQL several trainers share the jobs: one starting must not fail a job another live
    trainer runs. A SQLite file has one trainer, so every unfinished job there is lost."""
    live, gone, starting = Store(database_url), Store(database_url), Store(database_url)
    try:
        mine, theirs = live.claim_instance(), gone.claim_instance()
        assert (mine is None) == (theirs is None) == (database_url.endswith(".sqlite"))
        assert mine != theirs or mine is None
        live.save_job(JobRecord("alive", "auto", "stored", "queued", now(), owner=mine))
        live.save_job(JobRecord("orphan", "auto", "stored", "running", now(), owner=theirs))
        live.save_job(JobRecord("old", "manual", "body", "running", now()))  # a release before owners
        gone.close()  # its session, and so its instance lock, ends
        _released(starting, theirs)
        starting.claim_instance()
        ended = starting.end_lost_jobs(_failed)
        shared = mine is not None
        assert sorted(j.id for j in ended) == (["old", "orphan"] if shared else ["alive", "old", "orphan"])
        assert all(live.job(j.id) == j for j in ended), "saved as ended"
        assert [j.id for j in live.unfinished_jobs()] == (["alive"] if shared else [])
        assert starting.end_lost_jobs(_failed) == [], "a job is ended once"
        live.close()  # now the live trainer is gone too
        _released(starting, mine)
        assert [j.id for j in starting.end_lost_jobs(_failed)] == (["alive"] if shared else [])
    finally:
        for s in (live, gone, starting):
            s.close()


def test_a_trainer_whose_session_dropped_takes_its_instance_number_again(database_url: str) -> None:
    """A database restart ends the session holding a trainer's instance lock; until it takes the same
    number again, another trainer takes its running jobs for a dead trainer's. While the old session
    lingers on the server (a dropped network path), the number stays taken, and is retaken after."""
    with Store(database_url) as mine, Store(database_url) as other:
        number = mine.claim_instance()
        if number is None:  # a SQLite file: one trainer, no instance lock to lose
            assert mine.hold_instance()
            return
        assert mine.hold_instance(), "held: nothing to do"
        drop_instance_session(other, number)
        with other.db.read() as tx:
            assert not other.db.instance_alive(tx, number)
        assert mine.hold_instance(), "taken again on a new session"
        with other.db.read() as tx:
            assert other.db.instance_alive(tx, number)

        drop_instance_session(other, number)
        import psycopg  # a session of the old connection's that the server has not ended yet

        with psycopg.connect(database_url, autocommit=True) as lingering:
            lingering.execute("SELECT pg_advisory_lock(%s::int4, %s::int4)", (INSTANCE_LOCK_CLASS, number))
            assert not mine.hold_instance(), "not held while another session holds it"
        _released(other, number)
        assert mine.hold_instance(), "taken at the next look once that session has ended"
        assert mine.hold_instance()


def test_jobs_are_kept_and_the_unfinished_found_again(database_url: str) -> None:
    path = database_url
    store = Store(path)
    store.save_job(JobRecord("a", "auto", "stored", "running", now(), progress=("fold 1/3",)))
    result = TrainResult(TrainMetrics(0.8, 0.7, 0.6, 0.65, 0.79, 0.01), 400, "20260101_000000", "t", True)
    store.save_job(JobRecord("b", "manual", "body", "succeeded", now(), result=result))
    store.close()
    again = Store(path)
    assert [j.id for j in again.unfinished_jobs()] == ["a"]
    assert again.job("a") == JobRecord(
        "a", "auto", "stored", "running", again.job("a").created_at, progress=("fold 1/3",)
    )  # type: ignore[union-attr]
    assert again.job("b").result == result  # type: ignore[union-attr]


def test_a_database_of_release_0_1_is_upgraded(tmp_path: Path) -> None:
    """0.1 kept job results as untyped dicts, and no schema version."""
    import json
    import sqlite3

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE outcomes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
        "features TEXT NOT NULL, outcome INTEGER NOT NULL, evaluation INTEGER NOT NULL, received_at TEXT NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, record TEXT NOT NULL, created_at TEXT NOT NULL);"
    )
    old.execute(
        "INSERT INTO outcomes (id, features, outcome, evaluation, received_at) VALUES (?, ?, 1, 0, 't')",
        ("o-1", json.dumps({"a": 0.5})),
    )
    decision = None
    succeeded = {
        "id": "s", "kind": "auto", "source": "stored", "state": "succeeded", "created_at": "t",
        "started_at": "t", "finished_at": "t", "progress": ["fold 1/3"],
        "result": {"status": "success", "job": "s", "samples": 400, "modelVersion": "20260101_000000",
                   "timestamp": "t", "promoted": False, "decision": decision,
                   "metrics": {"accuracy": 0.8, "precision": 0.7, "recall": 0.6, "f1_score": 0.65,
                               "cv_score": 0.79, "cv_std": 0.01}},
    }  # fmt: skip
    failed = {
        "id": "f", "kind": "manual", "source": "body", "state": "failed", "created_at": "t",
        "result": {"status": "failed", "reason": "killed", "job": "f"},
    }  # fmt: skip
    for record in (succeeded, failed):
        old.execute("INSERT INTO jobs VALUES (?, ?, ?)", (record["id"], json.dumps(record), "t"))
    old.commit()
    old.close()
    store = Store(path)
    assert store.stats().total == 1
    s, f = store.job("s"), store.job("f")
    assert s is not None and s.result is not None and s.result.model_version == "20260101_000000"
    assert s.result.metrics.f1_score == 0.65 and s.progress == ("fold 1/3",) and s.reason is None
    assert f is not None and (f.result, f.reason) == (None, "killed")
    store.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION


def test_a_database_of_the_previous_schema_keeps_its_ledger_when_upgraded(database_url: str) -> None:
    """Schema 3 (release 0.3: the ledger, no holdout) gains the holdout column and table, rows intact."""
    from ml_matching.trainer import schema
    from ml_matching.trainer.database import open_database, run_statements

    db = open_database(database_url)
    with db.write() as tx:
        assert db.schema_version(tx) == 0  # a new database (and, on PostgreSQL, the version's table)
        run_statements(tx, schema._ddl(schema._V1, db.dialect))
        run_statements(tx, schema._ddl(schema._V3, db.dialect))
        tx.execute(
            "INSERT INTO predictions (id, at, version, probability, fallback, row, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            "p-1", "2026-11-30T12:00:00.000Z", "20260101_000000", 0.25, 0, "{}", "2026-11-30T12:00:01.000Z",
        )  # fmt: skip
        db.set_schema_version(tx, 3)
    db.close()
    with Store(database_url) as store, store.db.read() as tx:
        assert store.db.schema_version(tx) == SCHEMA_VERSION == 4
        assert tx.execute("SELECT id, probability, holdout FROM predictions").fetchall() == [
            ("p-1", 0.25, None)
        ]
        assert tx.execute("SELECT COUNT(*) FROM holdouts").fetchone()[0] == 0
