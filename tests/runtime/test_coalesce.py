"""Rows scored together in one event-loop turn get exactly what they would get alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from ml_matching.contract import load_version
from ml_matching.runtime.coalesce import RowCoalescer
from ml_matching.runtime.scoring import Scorer
from tests.conftest import FEATURE_NAMES, GB_VERSION, RF_VERSION


def _rows(n: int, seed: int) -> list[tuple[float, ...]]:
    x = np.random.default_rng(seed).uniform(-0.1, 1.0, size=(n, len(FEATURE_NAMES)))
    return [tuple(r) for r in x.tolist()]


@pytest.fixture
def scorers(store: Path) -> tuple[Scorer, Scorer]:
    return Scorer(load_version(store, RF_VERSION), 10), Scorer(load_version(store, GB_VERSION), 10)


async def _gather(coalescer: RowCoalescer, jobs: list[tuple[Scorer, tuple[float, ...]]]) -> list[bytes]:
    futures = [coalescer.submit(scorer, row) for scorer, row in jobs]  # all in one turn
    return list(await asyncio.gather(*futures))


def test_coalesced_rows_equal_rows_scored_alone(scorers: tuple[Scorer, Scorer]) -> None:
    rf, gb = scorers
    rows = _rows(24, 1)
    jobs = [(rf if i % 3 else gb, row) for i, row in enumerate(rows)]  # a swap in the middle of a turn
    together = asyncio.run(_gather(RowCoalescer(), jobs))
    alone = [scorer.predict_rows([row])[0] for scorer, row in jobs]
    assert together == alone
    assert b'"modelVersion":"20260102_000000"' in together[0] and RF_VERSION.encode() in together[1]


def test_each_turn_is_scored_separately(scorers: tuple[Scorer, Scorer]) -> None:
    rf, _ = scorers
    calls: list[int] = []
    real = rf.predict_rows

    def spy(rows: list[tuple[float, ...]]) -> list[bytes]:
        calls.append(len(rows))
        return real(rows)

    rf.predict_rows = spy  # type: ignore[method-assign]

    async def two_turns() -> None:
        coalescer = RowCoalescer()
        await _gather(coalescer, [(rf, row) for row in _rows(5, 2)])
        await _gather(coalescer, [(rf, row) for row in _rows(3, 3)])

    asyncio.run(two_turns())
    assert calls == [5, 3]


def test_a_scoring_failure_reaches_every_waiting_request(scorers: tuple[Scorer, Scorer]) -> None:
    rf, _ = scorers

    def broken(rows: list[tuple[float, ...]]) -> list[bytes]:
        raise RuntimeError("onnxruntime failed")

    rf.predict_rows = broken  # type: ignore[method-assign]

    async def run() -> list[BaseException | bytes]:
        coalescer = RowCoalescer()
        futures = [coalescer.submit(rf, row) for row in _rows(4, 4)]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    results = asyncio.run(run())
    assert len(results) == 4 and all(isinstance(r, RuntimeError) for r in results)
