"""Where collaboration outcomes and training jobs are kept: a small interface and its SQLite store.

:class:`OutcomeStore` and :class:`JobStore` are what the trainer needs; :class:`SqliteStore` is
the embedded implementation (stdlib ``sqlite3``, WAL, ``synchronous=FULL``: a commit returns once
the data is on disk, so an acknowledged outcome survives a crash or power loss). Another database
implements the same two protocols.

Each outcome is kept for training or for evaluation by a hash of its id (:func:`is_evaluation`),
decided once when it is stored: an outcome never moves from one to the other, and no training
ever sees the evaluation outcomes the promotion gate judges on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ml_matching.contract import FeatureSet, StorageFull
from ml_matching.trainer.errors import OutcomeConflict
from ml_matching.trainer.records import JobRecord, decode_record, encode

Split = Literal["training", "evaluation", "all"]


@dataclass(frozen=True)
class Outcome:
    """One collaboration's features and whether it succeeded."""

    id: str
    features: dict[str, float]
    outcome: bool


@dataclass(frozen=True)
class StoredOutcome(Outcome):
    seq: int
    evaluation: bool
    received_at: str


@dataclass(frozen=True)
class AddResult:
    stored: int
    duplicates: int
    ids: tuple[str, ...]
    last_seq: int


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
    def add(self, outcomes: Sequence[Outcome], evaluation_share: float) -> AddResult: ...
    def stats(self) -> Stats: ...
    def rows(self, split: Split, through: int | None = None) -> Iterator[StoredOutcome]: ...
    def mark_trained(self, through: int) -> None: ...
    def claim_retrain(self, every: int) -> int | None: ...
    def retrain_claimed_through(self) -> int: ...


class JobStore(Protocol):
    def save_job(self, job: JobRecord) -> None: ...
    def job(self, job_id: str) -> JobRecord | None: ...
    def unfinished_jobs(self) -> list[JobRecord]: ...


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


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: 1: outcomes, meta and jobs; 2: job records typed (result or reason).
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    features TEXT NOT NULL,
    outcome INTEGER NOT NULL,
    evaluation INTEGER NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, record TEXT NOT NULL, created_at TEXT NOT NULL);
"""


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a database made by any earlier release to :data:`SCHEMA_VERSION` (``PRAGMA user_version``)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StorageFull(f"the database is at schema {version}, newer than this release's {SCHEMA_VERSION}")
    db.execute("BEGIN IMMEDIATE")
    try:
        if version < 1:  # executescript would commit first: one statement at a time, in this transaction
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
        if version < 2:
            for job_id, record in db.execute("SELECT id, record FROM jobs").fetchall():
                db.execute("UPDATE jobs SET record = ? WHERE id = ?", (_typed_job(record), job_id))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _typed_job(record: str) -> str:
    """A job record of schema 1 (its result an untyped dict) in schema 2's shape."""
    data = json.loads(record)
    result = data.pop("result", None) or {}
    if result.get("status") == "success":
        data["result"] = {k: v for k, v in result.items() if k not in ("status", "job")}
    elif "reason" in result:
        data["reason"] = result["reason"]
    return json.dumps(data)


class SqliteStore:
    """:class:`OutcomeStore` and :class:`JobStore` in one SQLite file. Thread-safe; one process writes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before it returns
        with self._lock:
            _migrate(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _write(self, sql: str, *params: Any) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise StorageFull(f"{self.path}: {exc}") from None
            raise

    # --- outcomes --------------------------------------------------------------------------------

    def add(self, outcomes: Sequence[Outcome], evaluation_share: float) -> AddResult:
        """Store ``outcomes`` in one transaction; an id already stored with the same content is skipped.

        Raises
        ------
        OutcomeConflict
            An id is stored with other content; nothing of this call is stored.
        StorageFull
            The disk is full; nothing of this call is stored.
        """
        stamp = now()
        stored = 0
        with self._lock:
            self._write("BEGIN IMMEDIATE")
            try:
                for o in outcomes:
                    stored += self._insert(o, stamp, evaluation_share)
                last = self._last_seq()
                self._write("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return AddResult(stored, len(outcomes) - stored, tuple(o.id for o in outcomes), last)

    def _insert(self, o: Outcome, stamp: str, share: float) -> int:
        features = json.dumps(o.features, sort_keys=True)
        row = (o.id, features, int(o.outcome), int(is_evaluation(o.id, share)), stamp)
        cursor = self._write(
            "INSERT OR IGNORE INTO outcomes (id, features, outcome, evaluation, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            *row,
        )
        if cursor.rowcount == 1:
            return 1
        same = self._db.execute(
            "SELECT 1 FROM outcomes WHERE id = ? AND features = ? AND outcome = ?",
            (o.id, features, int(o.outcome)),
        ).fetchone()
        if same is None:
            raise OutcomeConflict(
                f"outcome `{o.id}` is already stored with other features or another outcome; "
                "a retry must send the same, a new outcome needs a new id"
            )
        return 0

    def _rollback(self) -> None:
        # A COMMIT that failed (disk full) may have rolled back already.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _last_seq(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM outcomes").fetchone()[0])

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> Stats:
        with self._lock:
            total, positives, evaluation, first, last, last_seq = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(outcome), 0), COALESCE(SUM(evaluation), 0), "
                "MIN(received_at), MAX(received_at), COALESCE(MAX(seq), 0) FROM outcomes"
            ).fetchone()
            trained = self._meta("trained_through")
            untrained = self._db.execute(
                "SELECT COUNT(*) FROM outcomes WHERE seq > ?", (trained,)
            ).fetchone()[0]
        return Stats(int(total), int(positives), int(untrained), int(evaluation), first, last, int(last_seq))

    def rows(self, split: Split, through: int | None = None) -> Iterator[StoredOutcome]:
        """Stored outcomes of ``split`` (up to sequence number ``through``), oldest first, in pages."""
        where = {"training": "evaluation = 0", "evaluation": "evaluation = 1", "all": "1 = 1"}[split]
        limit = through if through is not None else 2**62
        after = 0
        while True:
            with self._lock:
                page = self._db.execute(
                    "SELECT seq, id, features, outcome, evaluation, received_at FROM outcomes "
                    f"WHERE {where} AND seq > ? AND seq <= ? ORDER BY seq LIMIT 1000",
                    (after, limit),
                ).fetchall()
            if not page:
                return
            for seq, oid, features, outcome, evaluation, received in page:
                yield StoredOutcome(oid, json.loads(features), bool(outcome), seq, bool(evaluation), received)
            after = page[-1][0]

    def mark_trained(self, through: int) -> None:
        """Outcomes up to ``through`` have been used by a training."""
        with self._lock:
            self._write(
                "INSERT INTO meta (key, value) VALUES ('trained_through', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
                through,
            )

    def retrain_claimed_through(self) -> int:
        """The last sequence number a retraining was queued for."""
        with self._lock:
            return self._meta("retrain_claimed_through")

    def claim_retrain(self, every: int) -> int | None:
        """If ``every`` outcomes arrived since the last claim, claim them: return the last seq, else None."""
        if every <= 0:
            return None
        with self._lock:
            self._write("BEGIN IMMEDIATE")
            try:
                last, claimed = self._last_seq(), self._meta("retrain_claimed_through")
                if last - claimed < every:
                    self._write("COMMIT")
                    return None
                self._write(
                    "INSERT INTO meta (key, value) VALUES ('retrain_claimed_through', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    last,
                )
                self._write("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return last

    # --- jobs ------------------------------------------------------------------------------------

    def save_job(self, job: JobRecord) -> None:
        record = encode(job).decode()
        with self._lock:
            self._write(
                "INSERT INTO jobs (id, record, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                job.id,
                record,
                job.created_at,
            )

    def job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row[0]) if row else None

    def unfinished_jobs(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM jobs ORDER BY created_at").fetchall()
        return [j for j in (_job(r[0]) for r in rows) if not j.final]


def _job(text: str) -> JobRecord:
    return decode_record(text)
