"""The Node client's assignment (clients/node/lib/assignment.js) buckets every key as Python does.

The golden vectors pin a few keys; here 10,000 seeded random keys in every script (ASCII,
Latin-1, Greek, Cyrillic, Arabic, CJK, Hangul, emoji and other code points outside the BMP,
spaces, ``%``, and keys over 1 KB) and Hypothesis-drawn text go through both implementations:
the same SHA-256 digest, the same bucket, and the same refusals in the same words (empty, a lone
surrogate, over 4096 UTF-8 bytes). Needs only ``node`` (no npm install: the module has no
dependencies).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_matching.contract import InvalidInput
from ml_matching.contract.assignment import MAX_KEY_BYTES, bucket, unit_digest
from tests.conftest import ROOT

MODULE = ROOT / "clients" / "node" / "lib" / "assignment.js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

# Reads one JSON array of [salt, key] per stdin line; writes one JSON array of {digest, bucket} or
# {error} per line.
SCRIPT = """
import {createInterface} from 'node:readline'
const {bucket, unitDigest} = await import(process.argv[1])
for await (const line of createInterface({input: process.stdin})) {
  const out = JSON.parse(line).map(([salt, key]) => {
    try {
      return {digest: unitDigest(salt, key), bucket: bucket(salt, key)}
    } catch (error) {
      return {error: error.message}
    }
  })
  process.stdout.write(JSON.stringify(out) + '\\n')
}
"""
RANGES = [
    (0x20, 0x7E),
    (0xA0, 0xFF),
    (0x370, 0x4FF),
    (0x600, 0x6FF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
    (0x1F300, 0x1FAFF),
    (0x10000, 0x10FFFF),
]


@pytest.fixture(scope="module")
def node() -> Iterator[Any]:
    process = subprocess.Popen(
        ["node", "--input-type=module", "-e", SCRIPT, MODULE.as_uri()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8", cwd=ROOT,
    )  # fmt: skip
    yield process
    process.stdin.close()  # type: ignore[union-attr]
    process.wait(10)
    process.stdout.close()  # type: ignore[union-attr]


def _node(node: Any, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    # ensure_ascii: a lone surrogate travels as a \\ud800 escape, which JSON.parse keeps as one.
    node.stdin.write(json.dumps(pairs, ensure_ascii=True) + "\n")
    node.stdin.flush()
    return list(json.loads(node.stdout.readline()))


def _python(salt: str, key: str) -> dict[str, Any]:
    try:
        return {"digest": unit_digest(salt, key).hex(), "bucket": bucket(salt, key)}
    except InvalidInput as exc:
        return {"error": str(exc)}


def _random_keys(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    keys = []
    for i in range(count):
        length = 400 if i % 500 == 499 else rng.randint(1, 40)
        chars = []
        for _ in range(length):
            low, high = rng.choice(RANGES)
            code = rng.randint(low, high)
            chars.append(chr(0x41 if 0xD800 <= code <= 0xDFFF else code))
        keys.append("".join(chars))
    return keys


def test_ten_thousand_random_keys_get_the_same_digest_and_bucket(node: Any) -> None:
    keys = _random_keys(10_000, seed=20261130)
    salts = ["exp-golden", "01JDQZ0000-gb-vs-rf", "salt with spaces", "sälz 🚀"]
    pairs = [(salts[i % len(salts)], key) for i, key in enumerate(keys)]
    got = _node(node, pairs)
    assert len(got) == len(pairs)
    for (salt, key), answer in zip(pairs, got, strict=True):
        assert answer == _python(salt, key), (salt, key)


def test_refusals_in_the_same_words(node: Any) -> None:
    pairs = [
        ("s", ""),
        ("s", "a\ud800"),
        ("s", "\udfffb"),
        ("s", "k" * (MAX_KEY_BYTES + 1)),
        ("s", "ü" * 2049),
        ("s", "k" * MAX_KEY_BYTES),
        ("s", "🚀" * 1024),
    ]
    got = _node(node, pairs)
    for (salt, key), answer in zip(pairs, got, strict=True):
        assert answer == _python(salt, key), (salt, key[:20])
    assert [("error" in a) for a in got] == [True] * 5 + [False] * 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    salt=st.text(min_size=1, max_size=30),
    keys=st.lists(st.text(alphabet=st.characters(codec=None), max_size=60), min_size=1, max_size=200),
)
def test_drawn_text_gets_the_same_answer(node: Any, salt: str, keys: list[str]) -> None:
    pairs = [(salt, key) for key in keys]
    for (s, key), answer in zip(pairs, _node(node, pairs), strict=True):
        assert answer == _python(s, key), (s, key)
