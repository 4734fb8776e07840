"""The long-lived holdout, as the trainer keeps it: checked, stored, published to the store.

:class:`HoldoutBook` checks a new holdout (its version known, verifiable and scoring the features
ACTIVE scores; at most :data:`~ml_matching.contract.holdout.MAX_HOLDOUT_WEIGHT` basis points; no
other holdout running), keeps it in the ``holdouts`` table and publishes it as the store's
``HOLDOUT`` in the same transaction: if the file cannot be written, nothing is kept. Stopping it
removes the file (its units rejoin the live side) and keeps its record and ledger rows, so its
figures can still be read. At start-up the file is rewritten from the database when they disagree,
but for a file naming a holdout the database does not hold (see :mod:`.experiments`): left as it is,
with a warning.

A holdout has no controller and makes no decision: it measures. It is independent of experiments
(its own salt, its own file), so one can run for months while experiments come and go.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import msgspec

from ml_matching.contract import (
    SIDECAR_FILE,
    FeatureSet,
    InvalidInput,
    check_version_name,
    decode_sidecar,
    read_active,
    version_dir,
)
from ml_matching.contract.errors import HoldoutNotFound
from ml_matching.contract.experiment import now, stamped_id
from ml_matching.contract.features import feature_mismatch
from ml_matching.contract.holdout import (
    HOLDOUT_FILE,
    MAX_HOLDOUT_WEIGHT,
    Holdout,
    read_holdout,
    write_holdout,
)
from ml_matching.contract.store import publication
from ml_matching.trainer.database import Database, Tx
from ml_matching.trainer.errors import ExperimentConflict
from ml_matching.trainer.experiments import Verify, verify_version

log = logging.getLogger("ml_matching.trainer")


class HoldoutBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """``POST /holdouts``: the frozen ``version`` (ACTIVE's when absent) and its share of the units."""

    weight: Annotated[
        int, msgspec.Meta(ge=1, le=MAX_HOLDOUT_WEIGHT, description="basis points of the units (1 to 2,000)")
    ]
    version: str | None = None
    horizon_days: Annotated[float, msgspec.Meta(gt=0, le=365)] = 30.0
    salt: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


class HoldoutRecord(msgspec.Struct, rename="camel", frozen=True, omit_defaults=True):
    """A holdout and when it ended (``None`` while it runs)."""

    holdout: Holdout
    ended_at: str | None = None


class HoldoutBook:
    def __init__(self, db: Database, root: Path, verify: Verify = verify_version) -> None:
        self.db = db
        self.root = root
        self._verify = verify
        self._holdout = msgspec.json.Decoder(Holdout)

    def create(self, body: HoldoutBody) -> Holdout:
        """Check, keep and publish a new holdout."""
        active = read_active(self.root)
        version = body.version or active
        if version is None:
            raise InvalidInput("`version` is not given and the store has no ACTIVE version to freeze")
        check_version_name(version)
        model = self._verify(self.root, version)  # VersionNotFound, ArtifactCorrupt
        if active is not None and version != active:
            # ACTIVE was verified when it was promoted: its sidecar's features are enough here.
            served = decode_sidecar((version_dir(self.root, active) / SIDECAR_FILE).read_bytes())
            why = feature_mismatch(model.feature_set, FeatureSet(served.features), f"ACTIVE {active}")
            if why is not None:
                raise InvalidInput(
                    f"version {version}: {why}: held and live units send the same request, so both "
                    "must score the same features and check them alike"
                )
        created = now()
        holdout_id = stamped_id("holdout", created)
        holdout = Holdout(
            id=holdout_id,
            version=version,
            weight=body.weight,
            salt=body.salt or holdout_id,
            horizon_days=body.horizon_days,
            created_at=created,
        )
        with publication(self.root, HOLDOUT_FILE) as published, self.db.write() as tx:
            running = self.current(tx)
            if running is not None:
                raise ExperimentConflict(f"holdout {running.id} is running: stop it before starting another")
            tx.execute(
                "INSERT INTO holdouts (id, record, created_at) VALUES (?, ?, ?)",
                holdout.id,
                msgspec.json.encode(holdout).decode(),
                created,
            )
            published(lambda: write_holdout(self.root, holdout))
        log.info("holdout %s: %s frozen for %g %% of the units", holdout.id, version, holdout.weight / 100)
        return holdout

    def stop(self, holdout_id: str) -> HoldoutRecord:
        """End the holdout: its units are served live again; its record and rows stay."""
        with publication(self.root, HOLDOUT_FILE) as published, self.db.write() as tx:
            record = self.record(tx, holdout_id)
            if record.ended_at is not None:
                raise ExperimentConflict(f"holdout {holdout_id} ended at {record.ended_at}")
            ended = now()
            tx.execute("UPDATE holdouts SET ended_at = ? WHERE id = ?", ended, holdout_id)
            on_file = read_holdout(self.root)
            if on_file is not None and on_file.id == holdout_id:
                published(lambda: write_holdout(self.root, None))
        log.info("holdout %s: stopped", holdout_id)
        return HoldoutRecord(record.holdout, ended)

    def record(self, tx: Tx, holdout_id: str) -> HoldoutRecord:
        row = tx.execute("SELECT record, ended_at FROM holdouts WHERE id = ?", holdout_id).fetchone()
        if row is None:
            raise HoldoutNotFound(f"no holdout `{holdout_id}` (GET /holdouts lists them)")
        return HoldoutRecord(self._holdout.decode(row[0]), row[1])

    def current(self, tx: Tx) -> Holdout | None:
        row = tx.execute(
            "SELECT record FROM holdouts WHERE ended_at IS NULL ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        return self._holdout.decode(row[0]) if row is not None else None

    def all(self) -> list[HoldoutRecord]:
        """Every holdout, newest first."""
        with self.db.read() as tx:
            rows = tx.execute("SELECT record, ended_at FROM holdouts ORDER BY created_at DESC, id").fetchall()
        return [HoldoutRecord(self._holdout.decode(r), ended) for r, ended in rows]

    def reconcile(self) -> None:
        """Make the store's ``HOLDOUT`` say what the database says (called at start-up)."""
        with self.db.read() as tx:
            wanted = self.current(tx)
            on_file = read_holdout(self.root)
            if on_file is not None and wanted is None:
                known = tx.execute("SELECT 1 FROM holdouts WHERE id = ?", on_file.id).fetchone()
                if known is None:
                    log.warning("HOLDOUT names %s, which this database does not hold: left as is", on_file.id)
                    return
        if wanted != on_file:
            log.warning("HOLDOUT differed from the database: rewritten (%s)", wanted.id if wanted else "none")
            write_holdout(self.root, wanted)
