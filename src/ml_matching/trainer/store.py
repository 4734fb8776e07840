"""Where collaboration outcomes and training jobs are kept.

:class:`Store` holds them in the trainer's database (:mod:`.database`: a SQLite file, or
PostgreSQL); a call returns once its transaction is committed, so an acknowledged outcome survives
a crash. :class:`OutcomeStore` and :class:`JobStore` are the parts the rest of the trainer uses;
the prediction ledger (:mod:`.ledger`) and the experiments (:mod:`.experiments`) share the database.

Each outcome is kept for training or for evaluation by a hash of its id (:func:`is_evaluation`),
decided once when it is stored: an outcome never moves from one to the other, and no training
ever sees the evaluation outcomes the promotion gate judges on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

from ml_matching.contract import FeatureSet
from ml_matching.contract.experiment import now
from ml_matching.contract.ledger import LedgerRow
from ml_matching.trainer.database import TRAIN_LOCK, Database, PostgresDatabase, Tx, open_database
from ml_matching.trainer.errors import OutcomeConflict
from ml_matching.trainer.records import JobRecord, decode_record, encode
from ml_matching.trainer.schema import migrate

Split = Literal["training", "evaluation", "all"]
decode_row = msgspec.json.Decoder(LedgerRow).decode


@dataclass(frozen=True)
class Outcome:
    """One collaboration's features and whether it succeeded (``prediction_id``: the prediction it
    judges, when it came from the ledger)."""

    id: str
    features: dict[str, float]
    outcome: bool
    prediction_id: str | None = None


@dataclass(frozen=True)
class PredictionOutcome:
    """An outcome sent by the id of the prediction it judges (the ledger has its features)."""

    prediction_id: str
    outcome: bool


@dataclass(frozen=True)
class StoredOutcome:
    id: str
    features: dict[str, float]
    outcome: bool
    seq: int
    evaluation: bool
    received_at: str


@dataclass(frozen=True)
class AddResult:
    stored: int
    duplicates: int
    ids: tuple[str, ...]
    last_seq: int
    pending: int = 0  # outcomes by prediction id whose prediction has not arrived


@dataclass(frozen=True)
class Stats:
    total: int
    positives: int
    untrained: int
    evaluation: int
    first_at: str | None
    last_at: str | None
    last_seq: int


class OutcomeStore(Protocol):
    def add(self, outcomes: Sequence[Outcome | PredictionOutcome], evaluation_share: float) -> AddResult: ...
    def stats(self) -> Stats: ...
    def rows(self, split: Split, through: int | None = None) -> Iterator[StoredOutcome]: ...
    def mark_trained(self, through: int) -> None: ...
    def claim_retrain(self, every: int) -> int | None: ...
    def unclaimed(self) -> int: ...


class JobStore(Protocol):
    def save_job(self, job: JobRecord) -> None: ...
    def job(self, job_id: str) -> JobRecord | None: ...
    def unfinished_jobs(self) -> list[JobRecord]: ...
    def claim_instance(self) -> int | None: ...
    def hold_instance(self) -> bool: ...
    def end_lost_jobs(
        self, end: Callable[[JobRecord], JobRecord], spare: Callable[[JobRecord], bool] | None = None
    ) -> list[JobRecord]: ...


def matching(rows: Iterable[StoredOutcome], fs: FeatureSet) -> tuple[list[StoredOutcome], int]:
    """The outcomes recorded for exactly the features of ``fs``, and how many others were skipped."""
    names = set(fs.names)
    fitting, skipped = [], 0
    for o in rows:
        if set(o.features) == names:
            fitting.append(o)
        else:
            skipped += 1
    return fitting, skipped


def is_evaluation(outcome_id: str, share: float) -> bool:
    """Whether an outcome is kept for evaluation: the first 4 bytes of sha256(id) below share · 2³²."""
    return int.from_bytes(hashlib.sha256(outcome_id.encode()).digest()[:4], "big") < share * 2**32


class Store:
    """:class:`OutcomeStore` and :class:`JobStore` in the trainer's database. Thread-safe."""

    def __init__(self, url: str | Path) -> None:
        self.db: Database = open_database(url)
        try:
            migrate(self.db)
        except BaseException:
            self.db.close()
            raise

    @property
    def where(self) -> str:
        return self.db.where

    @property
    def shared(self) -> bool:
        """Whether other trainers may use this database (PostgreSQL) and so hold its training lock."""
        return isinstance(self.db, PostgresDatabase)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- outcomes --------------------------------------------------------------------------------

    def add(self, outcomes: Sequence[Outcome | PredictionOutcome], evaluation_share: float) -> AddResult:
        """Store ``outcomes`` in one transaction; an id already stored with the same content is skipped.

        An outcome by prediction id takes its features from the ledger, or waits for its prediction.

        Raises
        ------
        OutcomeConflict
            An id is stored with other content; nothing of this call is stored.
        StorageFull
            The disk is full; nothing of this call is stored.
        """
        plain = [o for o in outcomes if isinstance(o, Outcome)]
        by_prediction = [o for o in outcomes if isinstance(o, PredictionOutcome)]
        with self.db.write() as tx:
            # Stamped inside the transaction: writers are serialized, so received_at follows commit
            # order and "everything received by T" is what a reader inside the lock at T saw.
            stamp = now()
            stored = insert_outcomes(tx, plain, stamp, evaluation_share)
            joined, pending = add_prediction_outcomes(tx, by_prediction, stamp, evaluation_share)
            last = last_seq(tx)
        ids = tuple(o.prediction_id if isinstance(o, PredictionOutcome) else o.id for o in outcomes)
        new = stored + joined + pending
        return AddResult(stored + joined, len(outcomes) - new, ids, last, pending)

    def stats(self) -> Stats:
        with self.db.read() as tx:
            total, positives, evaluation, first, last, last_ = tx.execute(
                "SELECT COUNT(*), COALESCE(SUM(outcome), 0), COALESCE(SUM(evaluation), 0), "
                "MIN(received_at), MAX(received_at), COALESCE(MAX(seq), 0) FROM outcomes"
            ).fetchone()
            trained = _meta(tx, "trained_through")
            untrained = _since(tx, trained)
        return Stats(int(total), int(positives), int(untrained), int(evaluation), first, last, int(last_))

    def rows(self, split: Split, through: int | None = None) -> Iterator[StoredOutcome]:
        """Stored outcomes of ``split`` (up to sequence number ``through``), oldest first, in pages."""
        where = {"training": "evaluation = 0", "evaluation": "evaluation = 1", "all": "1 = 1"}[split]
        limit = through if through is not None else 2**62
        after = 0
        while True:
            with self.db.read() as tx:
                page = tx.execute(
                    "SELECT seq, id, features, outcome, evaluation, received_at FROM outcomes "
                    f"WHERE {where} AND seq > ? AND seq <= ? ORDER BY seq LIMIT 1000",
                    after,
                    limit,
                ).fetchall()
            if not page:
                return
            for seq, oid, features, outcome, evaluation, received in page:
                yield StoredOutcome(oid, json.loads(features), bool(outcome), seq, bool(evaluation), received)
            after = page[-1][0]

    def mark_trained(self, through: int) -> None:
        """Outcomes up to ``through`` have been used by a training."""
        greatest = self.db.dialect.greatest
        with self.db.write() as tx:
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('trained_through', ?) "
                f"ON CONFLICT(key) DO UPDATE SET value = {greatest}(meta.value, excluded.value)",
                through,
            )

    def unclaimed(self) -> int:
        """How many outcomes arrived since the last retraining was queued."""
        with self.db.read() as tx:
            return _since(tx, _meta(tx, "retrain_claimed_through"))

    def claim_retrain(self, every: int) -> int | None:
        """If ``every`` outcomes arrived since the last claim, claim them: return the last seq, else None."""
        if every <= 0:
            return None
        with self.db.write() as tx:
            if _since(tx, _meta(tx, "retrain_claimed_through")) < every:
                return None
            last = last_seq(tx)
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('retrain_claimed_through', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                last,
            )
        return last

    # --- jobs ------------------------------------------------------------------------------------

    @contextmanager
    def training_lock(self, waiting: Callable[[], None], stopping: Callable[[], bool]) -> Iterator[bool]:
        """One training job at a time across every trainer on this database (PostgreSQL's advisory
        lock; a SQLite file has one trainer). False: the trainer stopped while waiting."""
        if isinstance(self.db, PostgresDatabase):  # (self.shared, spelled so that mypy narrows it)
            with self.db.exclusive(TRAIN_LOCK, waiting, stopping) as got:
                yield got
        else:
            yield True

    def save_job(self, job: JobRecord) -> None:
        record = encode(job).decode()
        with self.db.write() as tx:
            tx.execute(
                "INSERT INTO jobs (id, record, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                job.id,
                record,
                job.created_at,
            )

    def job(self, job_id: str) -> JobRecord | None:
        with self.db.read() as tx:
            row = tx.execute("SELECT record FROM jobs WHERE id = ?", job_id).fetchone()
        return decode_record(row[0]) if row else None

    def unfinished_jobs(self) -> list[JobRecord]:
        with self.db.read() as tx:
            return _unfinished(tx)

    def claim_instance(self) -> int | None:
        """This trainer's instance number on a shared database, held while it runs (None on a SQLite
        file, which has one trainer): its job records name it as their owner."""
        return self.db.claim_instance() if isinstance(self.db, PostgresDatabase) else None

    def hold_instance(self) -> bool:
        """Whether this trainer still holds its instance number (taking it again after its session
        dropped); always on a SQLite file."""
        return self.db.hold_instance() if isinstance(self.db, PostgresDatabase) else True

    def end_lost_jobs(
        self, end: Callable[[JobRecord], JobRecord], spare: Callable[[JobRecord], bool] | None = None
    ) -> list[JobRecord]:
        """Save ``end(job)`` for every unfinished job whose trainer is gone, in one transaction; return
        them. On a SQLite file every unfinished job is lost (its one trainer is starting). On
        PostgreSQL a job is lost when the instance that owns it no longer holds its lock, or when it
        names no owner (a release before owners); another live trainer's job is left alone, and of
        trainers starting at once only one ends a lost job. A lost job for which ``spare`` is true is
        left for a later look."""
        ended = []
        with self.db.write() as tx:
            for job in _unfinished(tx):
                if self._owner_alive(tx, job.owner) or (spare is not None and spare(job)):
                    continue
                done = end(job)
                tx.execute("UPDATE jobs SET record = ? WHERE id = ?", encode(done).decode(), job.id)
                ended.append(done)
        return ended

    def _owner_alive(self, tx: Tx, owner: int | None) -> bool:
        if owner is None or not isinstance(self.db, PostgresDatabase):
            return False
        return self.db.instance_alive(tx, owner)


def _unfinished(tx: Tx) -> list[JobRecord]:
    rows = tx.execute("SELECT record FROM jobs ORDER BY created_at").fetchall()
    return [j for j in (decode_record(r[0]) for r in rows) if not j.final]


def insert_outcomes(tx: Tx, outcomes: Sequence[Outcome], stamp: str, share: float) -> int:
    """Store the new ones of ``outcomes`` in ``tx`` (in order); how many were new.

    One already stored (or earlier in the list) with the same content is skipped. Raises
    OutcomeConflict when an id (or a prediction) is stored with other content.
    """
    found = {
        oid: (features, bool(outcome))
        for oid, features, outcome in select_in(
            tx, "SELECT id, features, outcome FROM outcomes WHERE id IN", [o.id for o in outcomes]
        )
    }
    new = []
    for o in outcomes:
        features = json.dumps(o.features, sort_keys=True)
        if o.id in found:
            if found[o.id] != (features, o.outcome):
                what = f"prediction `{o.prediction_id}`'s outcome" if o.prediction_id else f"outcome `{o.id}`"
                raise OutcomeConflict(
                    f"{what} is already stored with other features or another outcome; "
                    "a retry must send the same, a new outcome needs a new id"
                )
            continue
        found[o.id] = (features, o.outcome)
        new.append((o.id, features, int(o.outcome), int(is_evaluation(o.id, share)), stamp, o.prediction_id))
    if new:
        tx.executemany(
            "INSERT INTO outcomes (id, features, outcome, evaluation, received_at, prediction_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            new,
        )
    return len(new)


def joined_outcome(row: LedgerRow, outcome: bool) -> Outcome:
    """The stored outcome of a prediction: its id is the prediction's, its features the scored row."""
    return Outcome(row.prediction_id, row.features, outcome, row.prediction_id)


def add_prediction_outcomes(
    tx: Tx, items: Sequence[PredictionOutcome], stamp: str, share: float
) -> tuple[int, int]:
    """Store outcomes by prediction id: joined to their ledger row now, or kept until it arrives.

    Returns (joined, newly pending); a resend is neither. Raises OutcomeConflict when a prediction
    already has another outcome.
    """
    if not items:
        return 0, 0
    ids = [i.prediction_id for i in items]
    rows = dict(select_in(tx, "SELECT id, row FROM predictions WHERE id IN", ids))
    joinable = [
        joined_outcome(decode_row(rows[i.prediction_id]), i.outcome) for i in items if i.prediction_id in rows
    ]
    joined = insert_outcomes(tx, joinable, stamp, share)
    waiting = {
        pid: bool(o)
        for pid, o in select_in(
            tx, "SELECT prediction_id, outcome FROM pending_outcomes WHERE prediction_id IN", ids
        )
    }
    # Joined before, its ledger row since pruned: a resend is a duplicate, another outcome a conflict
    # (not an outcome waiting again for a prediction that will never come back).
    unseen = [pid for pid in ids if pid not in rows]
    waiting |= {
        pid: bool(o)
        for pid, o in select_in(
            tx, "SELECT prediction_id, outcome FROM outcomes WHERE prediction_id IN", unseen
        )
    }
    new = []
    for item in items:
        if item.prediction_id in rows:
            continue
        before = waiting.get(item.prediction_id)
        if before is not None:
            if before != item.outcome:
                raise OutcomeConflict(
                    f"prediction `{item.prediction_id}` already has the outcome {before!s}; "
                    "a retry must send the same, and a prediction has one outcome"
                )
            continue
        waiting[item.prediction_id] = item.outcome
        new.append((item.prediction_id, int(item.outcome), stamp))
    if new:
        tx.executemany(
            "INSERT INTO pending_outcomes (prediction_id, outcome, received_at) VALUES (?, ?, ?)", new
        )
    return joined, len(new)


def select_in(tx: Tx, sql: str, keys: Sequence[str], chunk: int = 500) -> Iterator[Any]:
    """The rows of ``sql ( ?, ?, ... )`` for ``keys``, a chunk of keys per statement."""
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        yield from tx.execute(f"{sql} ({', '.join('?' * len(part))})", *part).fetchall()


def _since(tx: Tx, seq: int) -> int:
    """How many outcomes are stored after sequence number ``seq``: counted, not subtracted, since
    PostgreSQL's numbers have gaps (a rolled-back insert's are never given back)."""
    return int(tx.execute("SELECT COUNT(*) FROM outcomes WHERE seq > ?", seq).fetchone()[0])


def last_seq(tx: Tx) -> int:
    return int(tx.execute("SELECT COALESCE(MAX(seq), 0) FROM outcomes").fetchone()[0])


def _meta(tx: Tx, key: str) -> int:
    row = tx.execute("SELECT value FROM meta WHERE key = ?", key).fetchone()
    return int(row[0]) if row else 0
