"""Sticky assignment: the golden vectors (checked against coreutils' sha256sum, an implementation that
is not ours), refused keys, monotone ramps, and shares within binomial bounds over 100,000 keys."""

from __future__ import annotations

import json
import math
import subprocess
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_matching.contract import InvalidInput
from ml_matching.contract.assignment import (
    BUCKETS,
    MAX_KEY_BYTES,
    arm_index,
    bucket,
    region_size,
    unit_digest,
)
from tests.conftest import ROOT

VECTORS = json.loads((ROOT / "schemas" / "assignment-vectors.json").read_text(encoding="utf-8"))


def _sha256sum(data: bytes) -> str:
    return (
        subprocess.run(["sha256sum"], input=data, capture_output=True, check=True).stdout.decode().split()[0]
    )


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["what"])
def test_golden_vectors(vector: dict[str, object]) -> None:
    salt, key = str(vector.get("salt", VECTORS["salt"])), str(vector["key"])
    data = salt.encode() + b"\x00" + key.encode()
    assert len(key.encode()) == vector["utf8Bytes"]
    assert _sha256sum(data) == vector["sha256"] == unit_digest(salt, key).hex()
    assert int(str(vector["sha256"])[:16], 16) % BUCKETS == vector["bucket"] == bucket(salt, key)


def test_the_vectors_cover_what_the_issue_lists() -> None:
    kinds = " ".join(str(v["what"]) for v in VECTORS["vectors"])
    for kind in ("ascii", "Latin-1", "CJK", "emoji", "KB"):
        assert kind in kinds, kind
    assert max(int(v["utf8Bytes"]) for v in VECTORS["vectors"]) > 1024


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "the unit key is empty"),
        ("x" * (MAX_KEY_BYTES + 1), f"more than {MAX_KEY_BYTES}"),
        ("é" * (MAX_KEY_BYTES // 2 + 1), f"{MAX_KEY_BYTES + 2} bytes in UTF-8"),
        ("a\ud800b", "lone surrogate"),
    ],
)
def test_bad_keys_are_refused(key: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        bucket("salt", key)


weights_strategy = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, region_size(n)), min_size=n, max_size=n),
        st.lists(st.integers(0, region_size(n)), min_size=n, max_size=n),
    )
)


@given(weights_strategy)
def test_raising_weights_only_moves_units_from_control_to_that_candidate(
    pair: tuple[list[int], list[int]],
) -> None:
    """Over every bucket: with each weight raised (or kept), a unit keeps its arm or leaves control for
    the candidate whose weight rose; never back to control, never between candidates."""
    a, b = pair
    low = tuple(min(x, y) for x, y in zip(a, b, strict=True))
    high = tuple(max(x, y) for x, y in zip(a, b, strict=True))
    for k in range(BUCKETS):
        before, after = arm_index(k, low), arm_index(k, high)
        assert before == after or (before == -1 and high[after] > low[after]), (k, low, high)


def test_shares_are_within_binomial_bounds_over_100000_keys() -> None:
    weights = (1000, 2500)
    n = 100_000
    counts = Counter(arm_index(bucket("exp-binomial", f"brand-{i}"), weights) for i in range(n))
    design = {0: 0.10, 1: 0.25, -1: 0.65}
    for arm, p in design.items():
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[arm] - n * p) < 4 * sigma, (arm, counts[arm], n * p, sigma)


def test_a_new_salt_reshuffles_units() -> None:
    """Two experiments' assignments are independent: the same keys land in unrelated buckets."""
    keys = [f"brand-{i}" for i in range(20_000)]
    same = sum(bucket("exp-a", k) < 5000 and bucket("exp-b", k) < 5000 for k in keys)
    assert abs(same - 5000) < 4 * math.sqrt(20_000 * 0.25 * 0.75)
