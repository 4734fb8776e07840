"""The prediction ledger in the trainer's database, and outcomes that join the prediction they judge.

Runtimes (and the Node client) send the rows of :class:`~ml_matching.contract.ledger.LedgerRow`;
each is kept once by its ``predictionId`` (a resend stores nothing twice). An outcome sent as
``{"predictionId", "outcome"}`` becomes an ordinary stored outcome with the ledger row's features,
so it trains like any other; one whose prediction has not arrived yet waits in
``pending_outcomes`` and is joined, in the same transaction, when the prediction arrives. Either
order gives the same stored outcome, and each prediction has at most one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from ml_matching.contract.ledger import LedgerRow
from ml_matching.trainer.database import Tx
from ml_matching.trainer.errors import PredictionConflict
from ml_matching.trainer.store import decode_row, insert_outcome, joined_outcome

_encode = msgspec.json.Encoder(order="sorted").encode


@dataclass(frozen=True)
class LedgerAdded:
    stored: int
    duplicates: int
    joined: int  # outcomes that were waiting for these predictions


def add_predictions(tx: Tx, rows: Sequence[LedgerRow], stamp: str, share: float) -> LedgerAdded:
    """Store ``rows`` in ``tx``, and join the outcomes that were waiting for them.

    Raises PredictionConflict when a prediction id is stored with other content.
    """
    stored = joined = 0
    for row in rows:
        if not _insert(tx, row, stamp):
            continue
        stored += 1
        pending = tx.execute(
            "SELECT outcome FROM pending_outcomes WHERE prediction_id = ?", row.prediction_id
        ).fetchone()
        if pending is not None:
            insert_outcome(tx, joined_outcome(row, bool(pending[0])), stamp, share)
            tx.execute("DELETE FROM pending_outcomes WHERE prediction_id = ?", row.prediction_id)
            joined += 1
    return LedgerAdded(stored, len(rows) - stored, joined)


def _insert(tx: Tx, row: LedgerRow, stamp: str) -> bool:
    text = _encode(row).decode()
    cursor = tx.execute(
        "INSERT INTO predictions (id, at, experiment, revision, arm, weight, version, probability, unit, "
        "fallback, row, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        row.prediction_id, row.at, row.experiment, row.revision, row.arm, row.weight, row.version,
        row.probability, row.unit, int(row.fallback), text, stamp,
    )  # fmt: skip
    if cursor.rowcount != 1:
        stored = tx.execute("SELECT row FROM predictions WHERE id = ?", row.prediction_id).fetchone()
        if stored is None or stored[0] != text:
            raise PredictionConflict(
                f"prediction `{row.prediction_id}` is already stored with other content; a resend must "
                "send the same row (prediction ids are unique: a new prediction needs a new id)"
            )
        return False
    for shadow in row.shadow:
        tx.execute(
            "INSERT INTO shadow_scores (prediction_id, version, probability, error) VALUES (?, ?, ?, ?)",
            row.prediction_id, shadow.version, shadow.probability, shadow.error,
        )  # fmt: skip
    return True


def prediction_row(tx: Tx, prediction_id: str) -> LedgerRow | None:
    found = tx.execute("SELECT row FROM predictions WHERE id = ?", prediction_id).fetchone()
    return decode_row(found[0]) if found is not None else None


def prune(tx: Tx, before: str) -> tuple[int, int]:
    """Forget ledger rows and waiting outcomes received before ``before`` (ISO time); their counts.

    Joined outcomes stay (they are training data); only the ledger's copy of the prediction goes.
    """
    tx.execute(
        "DELETE FROM shadow_scores WHERE prediction_id IN (SELECT id FROM predictions WHERE received_at < ?)",
        before,
    )
    predictions = tx.execute("DELETE FROM predictions WHERE received_at < ?", before).rowcount
    pending = tx.execute("DELETE FROM pending_outcomes WHERE received_at < ?", before).rowcount
    return predictions, pending
