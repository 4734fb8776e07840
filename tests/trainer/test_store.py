"""The SQLite outcome store: the evaluation share, the retrain trigger, jobs that outlive the process."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from training.errors import OutcomeConflict
from training.outcomes import JobRecord, Outcome, SqliteStore, is_evaluation, now


def _outcome(i: int, outcome: bool = True) -> Outcome:
    return Outcome(f"id-{i}", {"a": i / 1000, "b": 0.5}, outcome)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "outcomes.sqlite")


def test_the_evaluation_share_is_a_stable_function_of_the_id() -> None:
    ids = [f"c-{i}" for i in range(5000)]
    share = sum(is_evaluation(i, 0.2) for i in ids) / len(ids)
    assert 0.18 < share < 0.22
    assert [is_evaluation(i, 0.2) for i in ids] == [is_evaluation(i, 0.2) for i in ids]
    assert not any(is_evaluation(i, 0.0) for i in ids)


def test_an_outcome_never_moves_between_training_and_evaluation(store: SqliteStore) -> None:
    store.add([_outcome(i) for i in range(300)], evaluation_share=0.2)
    before = {o.id for o in store.rows("evaluation")}
    store.add(
        [_outcome(i) for i in range(300, 400)], evaluation_share=0.5
    )  # a new share applies to new ones only
    after = {o.id for o in store.rows("evaluation") if int(o.id[3:]) < 300}
    assert before == after and 40 < len(before) < 80
    training = {o.id for o in store.rows("training")}
    assert not training & before and len(training) + len({o.id for o in store.rows("evaluation")}) == 400


def test_retraining_is_claimed_once_per_fifty_new_outcomes(store: SqliteStore) -> None:
    store.add([_outcome(i) for i in range(49)], 0.2)
    assert store.claim_retrain(50) is None
    store.add([_outcome(49)], 0.2)
    assert store.claim_retrain(50) == 50 and store.claim_retrain(50) is None
    store.add([_outcome(i) for i in range(50, 175)], 0.2)
    assert store.claim_retrain(50) == 175, "one claim for everything since the last"
    assert store.claim_retrain(0) is None, "0 turns automatic retraining off"


def test_untrained_counts_what_no_training_used(store: SqliteStore) -> None:
    store.add([_outcome(i) for i in range(80)], 0.2)
    store.mark_trained(60)
    store.add([_outcome(i) for i in range(80, 90)], 0.2)
    assert store.stats().untrained == 30
    store.mark_trained(10)  # the mark never goes back
    assert store.stats().untrained == 30


def test_a_conflict_stores_nothing_of_its_call(store: SqliteStore) -> None:
    store.add([_outcome(1)], 0.2)
    with pytest.raises(OutcomeConflict, match="outcome `id-1` is already stored"):
        store.add([_outcome(2), _outcome(1, outcome=False)], 0.2)
    assert store.stats().total == 1


def test_concurrent_writers_with_retries_store_each_outcome_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "o.sqlite")

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


def test_jobs_are_kept_and_the_unfinished_found_again(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    store = SqliteStore(path)
    store.save_job(JobRecord("a", "auto", "stored", "running", now(), progress=("fold 1/3",)))
    store.save_job(JobRecord("b", "manual", "body", "succeeded", now(), result={"status": "success"}))
    store.close()
    again = SqliteStore(path)
    assert [j.id for j in again.unfinished_jobs()] == ["a"]
    assert again.job("a") == JobRecord(
        "a", "auto", "stored", "running", again.job("a").created_at, progress=("fold 1/3",)
    )  # type: ignore[union-attr]
    assert again.job("b").result == {"status": "success"}  # type: ignore[union-attr]
