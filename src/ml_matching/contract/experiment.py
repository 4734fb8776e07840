"""The running experiment, as the trainer defines it and every runtime follows it.

The trainer writes it to the artifact store as ``EXPERIMENT`` (atomically, like ``ACTIVE``);
runtimes read it every ``MODEL_WATCH_SECONDS`` and apply it when its ``revision`` changes. The
file holds only what serving needs: which versions are in it, each arm's weight, the salt, the
state. The trainer keeps the rest (outcomes, decisions) in its database.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from pathlib import Path
from typing import Literal

import msgspec

from ml_matching.contract.assignment import CONTROL, HASH_VERSION, arm_index, bucket
from ml_matching.contract.store import read_published, write_published

EXPERIMENT_FILE = "EXPERIMENT"
State = Literal["running", "paused", "stopped"]


class Candidate(msgspec.Struct, rename="camel", frozen=True, forbid_unknown_fields=True):
    """A candidate arm: its name, its version, and its weight in basis points of the units."""

    arm: str
    version: str
    weight: int


class Experiment(msgspec.Struct, rename="camel", frozen=True, forbid_unknown_fields=True, dict=True):
    """One experiment: control, candidates and shadows, the salt their assignment is hashed with.

    ``state``: ``running`` assigns units to arms; ``paused`` and ``stopped`` serve everyone with
    control and record nothing. ``revision`` grows with every change a runtime must apply.
    """

    id: str
    name: str
    state: State
    control: str
    candidates: tuple[Candidate, ...]
    shadow: tuple[str, ...]
    salt: str
    horizon_days: float
    created_at: str
    revision: int = 1
    hash: str = HASH_VERSION

    @functools.cached_property  # read for every routed request: built once (``dict=True`` holds it)
    def weights(self) -> tuple[int, ...]:
        return tuple(c.weight for c in self.candidates)

    def versions(self) -> tuple[str, ...]:
        """Every version the experiment needs loaded: control, candidates, shadows (each once)."""
        out = [self.control, *(c.version for c in self.candidates), *self.shadow]
        return tuple(dict.fromkeys(out))

    def assign(self, key: str) -> tuple[str, str, int]:
        """The unit's (arm, version, weight in basis points): control unless a candidate serves it."""
        k = arm_index(bucket(self.salt, key), self.weights)
        if k < 0:
            return CONTROL, self.control, 10_000 - sum(self.weights)
        candidate = self.candidates[k]
        return candidate.arm, candidate.version, candidate.weight


_decoder = msgspec.json.Decoder(Experiment)


def read_experiment(root: Path) -> Experiment | None:
    """The experiment the store names, or None when there is none."""
    return read_published(root, EXPERIMENT_FILE, _decoder)


def write_experiment(root: Path, experiment: Experiment | None) -> None:
    """Publish ``experiment`` to every runtime (None: there is no experiment any more)."""
    write_published(root, EXPERIMENT_FILE, experiment)


def instant(t: dt.datetime) -> str:
    """``t`` (aware) in the one time format of experiments and the ledger: UTC, to the millisecond,
    ``2026-11-30T12:00:00.000Z``. Fixed width, so times compare as text."""
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> str:
    return instant(dt.datetime.now(dt.UTC))


def stamped_id(prefix: str, created: str) -> str:
    """``prefix-YYYYMMDD-HHMMSS-xxxx``: readable, sorted by creation, unique by its random tail."""
    stamp = created[:19].replace("-", "").replace(":", "").replace("T", "-")
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"
