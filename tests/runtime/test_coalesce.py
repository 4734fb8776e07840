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


def test_a_lone_request_is_scored_at_once_and_a_burst_is_coalesced_again(
    scorers: tuple[Scorer, Scorer],
) -> None:
    """After a turn that scored one row, the next request does not wait for its turn to end; a
    second request in that turn is queued, and the turn it ends puts the service back to coalescing."""
    rf, _ = scorers
    calls: list[int] = []
    done_at_once: list[bool] = []

    async def run() -> list[bytes]:
        coalescer: RowCoalescer[str] = RowCoalescer(_score(calls))
        answers = await _gather(coalescer, [(rf, _rows(1, 5)[0])])  # one request: a turn of one row
        for row in _rows(2, 6):  # one at a time, each in a turn of its own, as one client sends them
            await asyncio.sleep(0)
            future = coalescer.submit(rf, "id-lone", row)
            done_at_once.append(future.done())
            answers.append(await future)
        await asyncio.sleep(0)
        answers += await _gather(coalescer, [(rf, row) for row in _rows(5, 7)])  # a burst in one turn
        answers += await _gather(coalescer, [(rf, row) for row in _rows(3, 8)])  # load goes on
        return answers

    answers = asyncio.run(run())
    assert done_at_once == [True, True]
    assert calls == [1, 1, 1, 1, 4, 3]  # the burst: its first row at once, the other four together
    assert [msgspec.json.decode(a)["predictionId"] for a in answers[1:3]] == ["id-lone", "id-lone"]
    lone = _rows(2, 6)
    assert answers[1:3] == [rf.answer_rows([row], ["id-lone"], [PLAIN])[0][0] for row in lone]


def test_a_failure_of_a_row_scored_at_once_reaches_its_request(scorers: tuple[Scorer, Scorer]) -> None:
    rf, _ = scorers
    fail = [False]

    def flaky(scorer: Scorer, items: list[tuple[str, Row]]) -> list[bytes]:
        if fail[0]:
            raise RuntimeError("onnxruntime failed")
        return _score([])(scorer, items)  # type: ignore[no-any-return]

    async def run() -> BaseException | bytes:
        coalescer: RowCoalescer[str] = RowCoalescer(flaky)
        await _gather(coalescer, [(rf, _rows(1, 9)[0])])
        fail[0] = True
        future = coalescer.submit(rf, "id", _rows(1, 10)[0])
        assert future.done()
        return (await asyncio.gather(future, return_exceptions=True))[0]

    assert isinstance(asyncio.run(run()), RuntimeError)


def test_two_requests_a_turn_are_coalesced_after_a_lone_one(scorers: tuple[Scorer, Scorer]) -> None:
    """A turn that scored one row at once and queued another scored two rows: the next turn of two
    is scored in one call."""
    rf, _ = scorers
    calls: list[int] = []

    async def run() -> None:
        coalescer: RowCoalescer[str] = RowCoalescer(_score(calls))
        await _gather(coalescer, [(rf, _rows(1, 11)[0])])  # a turn of one row
        for seed in (12, 13, 14):
            await asyncio.sleep(0)
            await _gather(coalescer, [(rf, row) for row in _rows(2, seed)])

    asyncio.run(run())
    assert calls == [1, 1, 1, 2, 2]


def test_rows_of_one_version_in_different_groups_are_scored_apart(scorers: tuple[Scorer, Scorer]) -> None:
    """Rows routed by different experiments (one changed during the turn) share a version but not
    how they are recorded: each group is scored in a call of its own."""
    rf, _ = scorers
    rows = _rows(6, 4)
    calls: list[int] = []
    coalescer: RowCoalescer[str] = RowCoalescer(_score(calls))

    async def one_turn() -> list[bytes]:
        groups = ["before", "after", "before", "after", "after", "before"]
        futures = [
            coalescer.submit(rf, f"id-{i}", row, g)
            for i, (row, g) in enumerate(zip(rows, groups, strict=True))
        ]
        return list(await asyncio.gather(*futures))

    together = asyncio.run(one_turn())
    assert sorted(calls) == [3, 3]
    assert together == [rf.answer_rows([row], [f"id-{i}"], [PLAIN])[0][0] for i, row in enumerate(rows)]


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_a_few_rows_on_plain_floats_score_as_numpy_does(scorers: tuple[Scorer, Scorer], n: int) -> None:
    """Up to FEW_ROWS rows are scored without numpy's calls: the same floats, bit for bit, with
    rows inside and outside the training range."""
    for scorer in scorers:
        rows = _rows(n, n)
        answers, x, ps = scorer.answer_rows(rows, [f"id-{i}" for i in range(n)], [PLAIN] * n)
        p, conf = scorer.score(x)
        decoded = [msgspec.json.decode(a) for a in answers]
        assert ps == p.tolist()
        assert [(d["successProbability"], d["confidence"]) for d in decoded] == [
            (100.0 * pv, cv) for pv, cv in zip(p.tolist(), conf.tolist(), strict=True)
        ]
        assert any(c < 100.0 * abs(2 * pv - 1) for pv, c in zip(p.tolist(), conf.tolist(), strict=True))
