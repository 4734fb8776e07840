"""Sticky assignment of a unit (a brand, a pair: the caller's key) to an arm of an experiment.

``bucket = first 8 bytes of SHA-256(salt UTF-8 · 0x00 · key UTF-8), big-endian, mod 10,000``

SHA-256 is one named, frozen hash that Python and Node both carry natively; the key is hashed as
its UTF-8 bytes in both (never UTF-16 code units, which split one unit across arms in other
SDKs), and ``schemas/assignment-vectors.json`` pins keys in ASCII, Latin-1, CJK, emoji and over
1 KB with their buckets for every implementation to be tested against. The hash's name is
:data:`HASH_VERSION`, recorded with every ledger row, so a future change of hash is visible.

Arms hold fixed ranges of the 10,000 buckets: candidate ``k`` of ``n`` owns the region starting
at ``k · ⌊10,000 / n⌋`` and serves the first ``weight`` buckets of it; control serves every bucket
no candidate does. Raising a candidate's weight only moves units from control to that candidate,
never back and never between candidates; lowering it only moves its units back to control.
There is one hash for the whole assignment (no separate coverage hash to skew the split).
"""

from __future__ import annotations

import hashlib

from ml_matching.contract.errors import InvalidInput, MLMatchingError

BUCKETS = 10_000
HASH_VERSION = "sha256-v1"
#: The longest unit key, in UTF-8 bytes (a brand id or a pair id is far shorter).
MAX_KEY_BYTES = 4096
CONTROL = "control"


def check_hash(name: str) -> None:
    """Refuse an assignment made by another hash than this release's: applying ours to it would put
    units in other arms than the trainer (or a newer runtime) means, without an error."""
    if name != HASH_VERSION:
        raise MLMatchingError(
            f"it assigns units by hash `{name}`, which this release does not implement (it implements "
            f"`{HASH_VERSION}`): upgrade this runtime"
        )


def unit_bytes(key: str) -> bytes:
    """The key as hashed: its UTF-8 bytes. Raises InvalidInput for an empty or oversized key."""
    if not isinstance(key, str) or not key:
        raise InvalidInput("the unit key is empty: send a brand id, a pair id, … (or no key at all)")
    try:
        data = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the unit key is not valid Unicode text (a lone surrogate)") from None
    if len(data) > MAX_KEY_BYTES:
        raise InvalidInput(f"the unit key is {len(data)} bytes in UTF-8, more than {MAX_KEY_BYTES}")
    return data


def unit_digest(salt: str, key: str) -> bytes:
    """SHA-256 of the salt, a zero byte and the key: the bucket comes from it, and the ledger keeps
    its hex for the unit (the key itself is not stored)."""
    return hashlib.sha256(salt.encode("utf-8") + b"\x00" + unit_bytes(key)).digest()


def bucket_of(digest: bytes) -> int:
    """The bucket, 0 to 9,999, of a unit's digest."""
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket(salt: str, key: str) -> int:
    """The unit's bucket, 0 to 9,999, for an experiment salted with ``salt``."""
    return bucket_of(unit_digest(salt, key))


def region_size(candidates: int) -> int:
    """How many buckets each of ``candidates`` candidate arms may grow to."""
    return BUCKETS // max(candidates, 1)


def arm_index(b: int, weights: tuple[int, ...]) -> int:
    """Which arm serves bucket ``b``: ``-1`` for control, else the candidate's index."""
    size = region_size(len(weights))
    k, offset = divmod(b, size)
    return k if k < len(weights) and offset < weights[k] else -1
