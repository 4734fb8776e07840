"""The trainer's tables, and the migrations that bring any earlier database to this release's schema.

Schema versions (SQLite: ``PRAGMA user_version``; PostgreSQL: the ``ml_matching_schema`` table):

1. outcomes, meta (counters), jobs;
2. job records typed (a result or a reason);
3. the prediction ledger (``predictions``, ``shadow_scores``), outcomes joined by prediction id
   (``outcomes.prediction_id``, ``pending_outcomes`` for those whose prediction has not arrived),
   experiments and their decision logs;
4. the long-lived holdout: ``predictions.holdout`` (the holdout that placed the unit) and
   ``holdouts``.

A migration runs in one writing transaction: a database is at one version or the next, never between.
"""

from __future__ import annotations

import json

from ml_matching.contract import StorageFull
from ml_matching.trainer.database import Database, Dialect, Tx, run_statements

SCHEMA_VERSION = 4

_V1 = """
CREATE TABLE IF NOT EXISTS outcomes (
    seq {serial},
    id TEXT NOT NULL UNIQUE,
    features TEXT NOT NULL,
    outcome INTEGER NOT NULL,
    evaluation INTEGER NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, record TEXT NOT NULL, created_at TEXT NOT NULL)
"""

_V3 = """
ALTER TABLE outcomes ADD COLUMN prediction_id TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS outcomes_prediction ON outcomes (prediction_id);
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    experiment TEXT,
    revision INTEGER,
    arm TEXT,
    weight INTEGER,
    version TEXT NOT NULL,
    probability {real} NOT NULL,
    unit TEXT,
    fallback INTEGER NOT NULL,
    error TEXT,
    ms {real},
    row TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_experiment ON predictions (experiment, arm);
CREATE INDEX IF NOT EXISTS predictions_received ON predictions (received_at);
CREATE INDEX IF NOT EXISTS predictions_experiment_received ON predictions (experiment, received_at);
CREATE TABLE IF NOT EXISTS shadow_scores (
    prediction_id TEXT NOT NULL,
    version TEXT NOT NULL,
    probability {real},
    error TEXT,
    PRIMARY KEY (prediction_id, version)
);
CREATE TABLE IF NOT EXISTS pending_outcomes (
    prediction_id TEXT PRIMARY KEY,
    outcome INTEGER NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at TEXT NOT NULL,
    plan TEXT,
    progress TEXT
);
CREATE TABLE IF NOT EXISTS decisions (
    experiment TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (experiment, seq)
)
"""

_V4 = """
ALTER TABLE predictions ADD COLUMN holdout TEXT;
CREATE INDEX IF NOT EXISTS predictions_holdout ON predictions (holdout, arm);
CREATE TABLE IF NOT EXISTS holdouts (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT
)
"""


def migrate(db: Database) -> None:
    """Bring ``db`` to :data:`SCHEMA_VERSION`; a database newer than this release is refused."""
    with db.write() as tx:
        version = db.schema_version(tx)
        if version > SCHEMA_VERSION:
            raise StorageFull(
                f"{db.where}: the database is at schema {version}, newer than this release's {SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION:
            return
        if version < 1:
            run_statements(tx, _ddl(_V1, db.dialect))
        if version < 2:
            _type_jobs(tx)
        if version < 3:
            run_statements(tx, _ddl(_V3, db.dialect))
        if version < 4:
            run_statements(tx, _ddl(_V4, db.dialect))
        db.set_schema_version(tx, SCHEMA_VERSION)


def _ddl(script: str, dialect: Dialect) -> str:
    return script.format(serial=dialect.serial, real=dialect.real)


def _type_jobs(tx: Tx) -> None:
    """Job records of schema 1 (their result an untyped dict) in schema 2's shape."""
    for job_id, record in tx.execute("SELECT id, record FROM jobs").fetchall():
        data = json.loads(record)
        result = data.pop("result", None) or {}
        if result.get("status") == "success":
            data["result"] = {k: v for k, v in result.items() if k not in ("status", "job")}
        elif "reason" in result:
            data["reason"] = result["reason"]
        tx.execute("UPDATE jobs SET record = ? WHERE id = ?", json.dumps(data), job_id)
