"""The prediction ledger in the trainer's database, and outcomes that join the prediction they judge.

Runtimes (and the Node client) send the rows of :class:`~ml_matching.contract.ledger.LedgerRow`;
each is kept once by its ``predictionId`` (a resend stores nothing twice). An outcome sent as
``{"predictionId", "outcome"}`` becomes an ordinary stored outcome with the ledger row's features,
so it trains like any other; one whose prediction has not arrived yet waits in
``pending_outcomes`` and is joined, in the same transaction, when the prediction arrives. Either
order gives the same stored outcome, and each prediction has at most one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec

from ml_matching.contract.ledger import LedgerRow
from ml_matching.trainer.database import Tx
from ml_matching.trainer.errors import PredictionConflict
from ml_matching.trainer.store import decode_row, insert_outcomes, joined_outcome, select_in

_encode = msgspec.json.Encoder(order="sorted").encode


#: The times a ledger row may carry: a clock wrong by centuries is a bug, whose rows no report or
#: horizon could place.
EARLIEST, LATEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class LedgerAdded:
    stored: int
    duplicates: int
    joined: int  # outcomes that were waiting for these predictions


def row_problem(row: LedgerRow, nul: bool = True) -> str | None:
    """What is wrong with ``row`` beyond its shape (None: nothing): a time that does not exist,
    which the controller's horizon arithmetic would fail on later, a shadow version named twice,
    or (when ``nul``: its batch's JSON held a ``\\u0000``) a NUL character, which no text column
    of PostgreSQL can hold."""
    try:
        at = dt.datetime.fromisoformat(row.at)
    except ValueError:
        return f"field `at`: {row.at} is no time (expected UTC, e.g. 2026-11-30T12:00:00.000Z)"
    if not EARLIEST <= at < LATEST:  # year 1 or 9999 broke the report's time axis, for good
        return f"field `at`: {row.at} is outside the years {EARLIEST.year} to {LATEST.year - 1}"
    versions = [s.version for s in row.shadow]
    twice = sorted({v for v in versions if versions.count(v) > 1})
    if twice:
        return f"field `shadow`: version {twice[0]} is scored twice (one score per shadow version)"
    if nul and any("\x00" in text for text in _texts(msgspec.to_builtins(row))):
        return "a text field holds a NUL character (\\u0000), which cannot be stored"
    return None


def _texts(value: object) -> Iterator[str]:
    """Every string in a JSON-like ``value``, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def add_predictions(tx: Tx, rows: Sequence[LedgerRow], stamp: str, share: float) -> LedgerAdded:
    """Store ``rows`` in ``tx``, and join the outcomes that were waiting for them.

    Raises PredictionConflict when a prediction id is stored (or sent twice) with other content.
    """
    texts = [_encode(row).decode() for row in rows]
    found = dict(
        select_in(tx, "SELECT id, row FROM predictions WHERE id IN", [r.prediction_id for r in rows])
    )
    new: list[tuple[LedgerRow, str]] = []
    for row, text in zip(rows, texts, strict=True):
        if row.prediction_id in found:
            if found[row.prediction_id] != text:
                raise PredictionConflict(
                    f"prediction `{row.prediction_id}` is already stored with other content; a resend must "
                    "send the same row (prediction ids are unique: a new prediction needs a new id)"
                )
            continue
        found[row.prediction_id] = text
        new.append((row, text))
    _insert(tx, new, stamp)
    waiting = dict(
        select_in(
            tx,
            "SELECT prediction_id, outcome FROM pending_outcomes WHERE prediction_id IN",
            [r.prediction_id for r, _ in new],
        )
    )
    if waiting:
        by_id = {r.prediction_id: r for r, _ in new}
        insert_outcomes(tx, [joined_outcome(by_id[p], bool(o)) for p, o in waiting.items()], stamp, share)
        tx.executemany("DELETE FROM pending_outcomes WHERE prediction_id = ?", [(p,) for p in waiting])
    return LedgerAdded(len(new), len(rows) - len(new), len(waiting))


def _values(r: LedgerRow, text: str, stamp: str) -> tuple[object, ...]:
    return (
        r.prediction_id, r.at, r.experiment, r.revision, r.arm, r.weight, r.version, r.probability, r.unit,
        int(r.fallback), r.error, r.ms, text, stamp, r.holdout,
    )  # fmt: skip


def _insert(tx: Tx, new: list[tuple[LedgerRow, str]], stamp: str) -> None:
    if not new:
        return
    tx.executemany(
        "INSERT INTO predictions (id, at, experiment, revision, arm, weight, version, probability, unit, "
        "fallback, error, ms, row, received_at, holdout) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_values(r, text, stamp) for r, text in new],
    )  # fmt: skip
    shadows = [(r.prediction_id, s.version, s.probability, s.error) for r, _ in new for s in r.shadow]
    if shadows:
        tx.executemany(
            "INSERT INTO shadow_scores (prediction_id, version, probability, error) VALUES (?, ?, ?, ?)",
            shadows,
        )


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
