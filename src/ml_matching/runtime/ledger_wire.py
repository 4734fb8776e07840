"""What the runtime hands its ledger process, and what that process reports back.

The serving process makes no ledger row of a group it scored: it hands the group's facts to the
ledger process (:mod:`.ledger_process`), one tuple a row and the float32 rows as bytes, and that
process makes the rows (:meth:`Group.rows`), encodes them and sends them to the trainer. Made in
the serving process, a row took about 16 µs of its event loop (made, encoded, queued and sent:
``bench/experiment_parts.py``), a third of what a keyed request cost in-process; a tuple a row
costs a small part of that.

On the pipes, each message is a frame: its length (4 bytes, little-endian), then the message in
MessagePack, decoded into the types below and checked as it is (the runtime decodes nothing that
could run code).
"""

from __future__ import annotations

from typing import IO

import msgspec
import numpy as np
import numpy.typing as npt

from ml_matching.contract.assignment import HASH_VERSION
from ml_matching.contract.ledger import LedgerRow, ShadowScore

#: One served row: predictionId, the version that served it, its probability, the ms its group
#: took; then, under an experiment or a holdout (else None, None, None, None, False, None, None):
#: experiment, arm, the arm's weight, the unit's digest, fallback, why, holdout.
Served = tuple[
    str, str, float, float | None, str | None, str | None, int | None, str | None, bool, str | None,
    str | None,
]  # fmt: skip
#: A shadow version's scores of a group's rows: the version, a probability a row (None: it failed,
#: or was skipped), and why not.
ShadowColumn = tuple[str, list[float] | None, str | None]
#: The environment variable that gives the ledger process its settings (JSON).
SETTINGS_VARIABLE = "ML_MATCHING_LEDGER_PROCESS"
#: The most bytes one frame may hold (a group of MAX_BATCH_ROWS rows is far below it).
MAX_FRAME = 256 * 1024 * 1024


class Group(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The rows of one scored group to record: when (``at``), under which revision of the
    experiment, the features' ``names`` (every version a request may be routed to declares the same
    features: :func:`~ml_matching.contract.features.feature_mismatch`), the float32 rows ``x`` as
    bytes (row-major), one :data:`Served` a row, and the experiment's shadow versions' scores of
    them (:mod:`.shadow` adds them)."""

    at: str
    revision: int | None
    names: tuple[str, ...]
    x: bytes
    served: list[Served]
    shadow: tuple[ShadowColumn, ...] = ()

    def matrix(self) -> npt.NDArray[np.float32]:
        """The rows the model saw, as it saw them (read-only: a view of ``x``)."""
        return np.frombuffer(self.x, dtype=np.float32).reshape(len(self.served), len(self.names))

    def rows(self) -> list[LedgerRow]:
        """The ledger rows: the values the model saw, as floats, under the features' names."""
        values = self.matrix().tolist()
        return [self._row(i, s, v) for i, (s, v) in enumerate(zip(self.served, values, strict=True))]

    def _row(self, i: int, s: Served, x: list[float]) -> LedgerRow:
        prediction_id, version, p, ms, experiment, arm, weight, unit, fallback, error, holdout = s
        features = dict(zip(self.names, x, strict=True))
        if experiment is None and holdout is None:
            return LedgerRow(prediction_id, self.at, version, p, features, ms=ms)
        revision = self.revision if experiment is not None else None
        shadow = tuple(
            ShadowScore(v, error=why) if ps is None else ShadowScore(v, probability=ps[i])
            for v, ps, why in self.shadow
        )
        return LedgerRow(
            prediction_id, self.at, version, p, features, experiment, revision, arm, weight, unit,
            HASH_VERSION, fallback, error, ms, shadow, holdout=holdout,
        )  # fmt: skip


class Stop(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """Send what is queued (for up to ``flush_seconds``), report, and end."""

    flush_seconds: float


class Report(msgspec.Struct, frozen=True, array_like=True, tag=True):
    """The ledger process's counts so far: rows it has taken from the pipe (``received``), queued
    now, sent (acknowledged), refused by the trainer, dropped by why, and the last error."""

    received: int
    queued: int
    sent: int
    refused: int
    drops: dict[str, int]
    last_error: str | None


ToLedger = Group | Stop
_encode = msgspec.msgpack.Encoder().encode
_to_ledger = msgspec.msgpack.Decoder(ToLedger)
_report = msgspec.msgpack.Decoder(Report)


def frame(message: ToLedger | Report) -> bytes:
    payload = _encode(message)
    return len(payload).to_bytes(4, "little") + payload


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's message (None: the stream ended, or ended within a frame)."""
    header = stream.read(4)
    if len(header) < 4:
        return None
    size = int.from_bytes(header, "little")
    if size > MAX_FRAME:
        raise ValueError(f"a ledger frame of {size} bytes, more than {MAX_FRAME}")
    payload = stream.read(size)
    return payload if len(payload) == size else None


def to_ledger(payload: bytes) -> ToLedger:
    return _to_ledger.decode(payload)


def report(payload: bytes) -> Report:
    return _report.decode(payload)
