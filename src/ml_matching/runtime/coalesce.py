"""Score the one-row requests that arrive together in one onnxruntime call.

Under concurrent load many ``/predict`` requests are handled in the same turn of the event loop.
Each would walk the forest on its own, with the model's nodes evicted from the CPU cache by the HTTP
work in between; scored together at the end of the turn, the forest is walked once with its nodes
hot. bench/ measured 0.120 → 0.091 ms of server CPU per request at 16 connections, for one extra
loop turn (tens of microseconds) on each request's latency.
"""

from __future__ import annotations

import asyncio

from ml_matching.runtime.scoring import Scorer

Pending = tuple[Scorer, tuple[float, ...], "asyncio.Future[bytes]"]


class RowCoalescer:
    """Collects decoded rows during one event-loop turn and scores them when it ends."""

    def __init__(self) -> None:
        self._pending: list[Pending] = []

    def submit(self, scorer: Scorer, row: tuple[float, ...]) -> asyncio.Future[bytes]:
        """Queue ``row`` for ``scorer``; the future resolves to its encoded PredictResponse."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((scorer, row, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        # Rows queued across a hot swap stay with the model their request started on.
        groups: dict[int, list[Pending]] = {}
        for item in pending:
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            _score(items)


def _score(items: list[Pending]) -> None:
    try:
        outputs = items[0][0].predict_rows([row for _, row, _ in items])
    except Exception as exc:  # every waiting request gets it; the app's handlers answer it
        for _, _, future in items:
            if not future.done():
                future.set_exception(exc)
        return
    for (_, _, future), out in zip(items, outputs, strict=True):
        if not future.done():  # a request whose client went away was cancelled
            future.set_result(out)
