"""The long-lived holdout: a frozen version that keeps serving a small, fixed share of the units.

Retraining every 50 outcomes makes a stream of challengers, each tested against the champion of the
moment. Each test is relative: a slow drift through many "not worse" promotions is invisible to
them. The holdout measures it: units in buckets ``[0, weight)`` of the holdout's own salt are served
by one frozen version for as long as the holdout lasts, never enter an experiment, and the trainer
compares their outcomes with everyone else's ("live": whatever the learning loop serves).

The trainer writes it to the artifact store as ``HOLDOUT`` (atomically, like ``ACTIVE``); every
runtime, and every Node client scoring in-process, follows it within ``MODEL_WATCH_SECONDS``.
Assignment is the experiments' hash (:mod:`.assignment`) with the holdout's salt, checked before
any experiment's: a held unit's key never reaches an experiment's salt.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ml_matching.contract.assignment import HASH_VERSION, bucket_of, unit_digest
from ml_matching.contract.store import read_published, write_published

HOLDOUT_FILE = "HOLDOUT"
#: The arm of held-out units in the ledger; units outside it are on the ``live`` side.
HOLDOUT = "holdout"
LIVE = "live"
#: A holdout is a small share: every unit in it forgoes what retraining gains (20 %).
MAX_HOLDOUT_WEIGHT = 2_000


class Holdout(msgspec.Struct, rename="camel", frozen=True, forbid_unknown_fields=True):
    """A frozen ``version`` serving the units whose bucket, salted with ``salt``, is below ``weight``
    (basis points); ``horizonDays``: how long an outcome may take to arrive."""

    id: str
    version: str
    weight: int
    salt: str
    horizon_days: float
    created_at: str
    hash: str = HASH_VERSION

    def place(self, key: str) -> tuple[bool, str]:
        """Whether unit ``key`` is held out, and its salted digest (hex) for the ledger.

        Raises InvalidInput for an empty or oversized key.
        """
        digest = unit_digest(self.salt, key)
        return bucket_of(digest) < self.weight, digest.hex()


_decoder = msgspec.json.Decoder(Holdout)


def read_holdout(root: Path) -> Holdout | None:
    """The holdout the store names, or None when there is none."""
    return read_published(root, HOLDOUT_FILE, _decoder)


def write_holdout(root: Path, holdout: Holdout | None) -> None:
    """Publish ``holdout`` to every runtime (None: the holdout ended; its units rejoin the live side)."""
    write_published(root, HOLDOUT_FILE, holdout)
