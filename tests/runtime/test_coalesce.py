"""Rows scored together in one event-loop turn get exactly what they would get alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from ml_matching.contract import load_version
from ml_matching.runtime.coalesce import RowCoalescer
from ml_matching.runtime.scoring import PLAIN, Scorer
from tests.conftest import FEATURE_NAMES, GB_VERSION, RF_VERSION

Row = tuple[float, ...]


def _rows(n: int, seed: int) -> list[Row]:
    x = np.random.default_rng(seed).uniform(-0.1, 1.0, size=(n, len(FEATURE_NAMES)))
    return [tuple(r) for r in x.tolist()]


@pytest.fixture
def scorers(store: Path) -> tuple[Scorer, Scorer]:
    return Scorer(load_version(store, RF_VERSION), 10), Scorer(load_version(store, GB_VERSION), 10)


def _score(calls: list[int]) -> Any:
    """What the service scores a group with: one answer per row, the request's id in it."""

    def score(scorer: Scorer, items: list[tuple[str, Row]]) -> list[bytes]:
        calls.append(len(items))
        ids = [carried for carried, _ in items]
        return scorer.answer_rows([row for _, row in items], ids, [PLAIN] * len(items))[0]

    return score


async def _gather(coalescer: RowCoalescer[str], jobs: list[tuple[Scorer, Row]]) -> list[bytes]:
    futures = [coalescer.submit(scorer, f"id-{i}", row) for i, (scorer, row) in enumerate(jobs)]
    return list(await asyncio.gather(*futures))  # all submitted in one turn


def test_coalesced_rows_equal_rows_scored_alone(scorers: tuple[Scorer, Scorer]) -> None:
    rf, gb = scorers
    rows = _rows(24, 1)
    jobs = [(rf if i % 3 else gb, row) for i, row in enumerate(rows)]  # a swap in the middle of a turn
    calls: list[int] = []
    together = asyncio.run(_gather(RowCoalescer(_score(calls)), jobs))
    alone = [scorer.answer_rows([row], [f"id-{i}"], [PLAIN])[0][0] for i, (scorer, row) in enumerate(jobs)]
    assert together == alone
    assert sorted(calls) == [8, 16]  # one call per version
    first = msgspec.json.decode(together[0])
    assert first["modelVersion"] == GB_VERSION and first["predictionId"] == "id-0"
    assert RF_VERSION.encode() in together[1]


def test_each_turn_is_scored_separately(scorers: tuple[Scorer, Scorer]) -> None:
    rf, _ = scorers
    calls: list[int] = []

    async def two_turns() -> None:
        coalescer: RowCoalescer[str] = RowCoalescer(_score(calls))
        await _gather(coalescer, [(rf, row) for row in _rows(5, 2)])
        await _gather(coalescer, [(rf, row) for row in _rows(3, 3)])

    asyncio.run(two_turns())
    assert calls == [5, 3]


def test_a_scoring_failure_reaches_every_waiting_request(scorers: tuple[Scorer, Scorer]) -> None:
    rf, _ = scorers

    def broken(scorer: Scorer, items: list[tuple[str, Row]]) -> list[bytes]:
        raise RuntimeError("onnxruntime failed")

    async def run() -> list[BaseException | bytes]:
        coalescer: RowCoalescer[str] = RowCoalescer(broken)
        futures = [coalescer.submit(rf, "id", row) for row in _rows(4, 4)]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    results = asyncio.run(run())
    assert len(results) == 4 and all(isinstance(r, RuntimeError) for r in results)
