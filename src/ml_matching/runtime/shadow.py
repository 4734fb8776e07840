"""Shadow scoring: the experiment's shadow versions score the rows the arms served, off the answer's path.

The request path only hands the scored rows to a bounded queue (no wait); a thread of its own
takes them, scores them with each shadow version, and passes each group of rows, now with the
shadows' probabilities, to the ledger. The thread lingers before it takes what waits (:data:`LINGER_SECONDS`),
as the ledger's sender does: woken for each batch, it scored the one or two rows of an event-loop
turn at a time, and each wake took the GIL from the event loop: lingering, the runtime answered
1.23× the requests with a shadow at 0.75× the CPU each (``bench/ab.py --experiment
experiment+shadow``). A shadow that raises or is slow never delays
or fails an answer: a raising shadow is recorded as failed on the row, and when the queue is full
the rows go to the ledger without shadow scores (``skipped``). Both are counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import msgspec
import numpy as np

from ml_matching.runtime.ledger_wire import Group, ShadowColumn
from ml_matching.runtime.scoring import Scorer

log = logging.getLogger("ml_matching")
Work = tuple[tuple[Scorer, ...], Group]
#: Told (version, result, rows) for each shadow outcome: ``scored``, ``failed`` or ``skipped``.
Count = Callable[[str, str, int], None]
#: How long the thread waits, once rows are queued, for more to score with them.
LINGER_SECONDS = 0.05
#: The most rows scored in one onnxruntime call per shadow version.
MAX_ROWS = 4096


class Shadows:
    """The queue of rows to shadow-score, and the thread that scores them."""

    def __init__(
        self,
        capacity: int,
        deliver: Callable[[Group], None],
        count: Count,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.linger = linger
        self._queue: queue.Queue[Work | None] = queue.Queue(maxsize=capacity)
        #: Set when the queue is half full: the thread stops lingering (a fuller queue skips rows).
        self._hurry = threading.Event()
        self._half = max(capacity // 2, 1)
        self._deliver = deliver
        self._count = count
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=10)  # behind what is queued: that is scored first
            except queue.Full:
                log.warning("shadow: the thread did not empty its queue in 10 s; stopping without it")
                return
            self._thread.join(timeout=10)

    def submit(self, scorers: tuple[Scorer, ...], group: Group) -> None:
        """Queue a served group for the shadows (no wait); with a full queue it goes on without them."""
        try:
            self._queue.put_nowait((scorers, group))
            if self._queue.qsize() >= self._half:
                self._hurry.set()
        except queue.Full:
            reason = "skipped: the shadow queue was full"
            for scorer in scorers:
                self._count(scorer.version, "skipped", len(group.served))
            self._deliver(_with(group, tuple((s.version, None, reason) for s in scorers)))

    def wait_idle(self, seconds: float) -> bool:
        """Whether the queue emptied within ``seconds`` (for tests)."""
        deadline = time.monotonic() + seconds
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        carried: list[Work | None] = []  # taken from the queue, not scored yet: a stop, or another
        while True:  # experiment's rows
            if carried:
                item = carried.pop()
            else:
                item = self._queue.get()
                if item is not None and self.linger > 0:
                    # Waiting on the event, not the queue: a put wakes nothing until it is half full.
                    self._hurry.wait(self.linger)
                self._hurry.clear()
            if item is None:
                self._queue.task_done()
                return
            items = self._with_more(item, carried)
            try:
                self._score(items)
            except Exception:  # never seen; if it happens, these rows are lost but the thread goes on
                log.exception("shadow: scoring %d batches failed; their rows are not recorded", len(items))
            finally:
                for _ in items:
                    self._queue.task_done()

    def _with_more(self, item: Work, carried: list[Work | None]) -> list[Work]:
        """``item`` and what waits behind it for the same shadows, to score together (up to
        MAX_ROWS rows). What stops the look-ahead (a stop, or another experiment's rows) goes to
        ``carried`` for the next turn, not back in the queue: the request path may have filled the
        queue meanwhile, and a blocking put would then wait for this very thread."""
        items = [item]
        rows = len(item[1].served)
        while rows < MAX_ROWS:
            try:
                following = self._queue.get_nowait()
            except queue.Empty:
                break
            if following is None or following[0] != item[0]:
                carried.append(following)
                break
            items.append(following)
            rows += len(following[1].served)
        return items

    def _score(self, items: list[Work]) -> None:
        scorers = items[0][0]
        x = np.concatenate([group.matrix() for _, group in items]) if len(items) > 1 else items[0][1].matrix()
        columns: list[ShadowColumn] = []
        for scorer in scorers:
            try:
                p = scorer.model.predict_proba(x).astype(np.float64).tolist()
            except Exception as exc:  # a shadow's failure is its own: counted, never the answer's
                self._count(scorer.version, "failed", len(x))
                columns.append((scorer.version, None, f"{type(exc).__name__}: {exc}"[:200]))
                continue
            self._count(scorer.version, "scored", len(x))
            columns.append((scorer.version, p, None))
        start = 0
        for _, group in items:  # each group with its own rows' scores
            end = start + len(group.served)
            shadow = tuple((v, None if p is None else p[start:end], why) for v, p, why in columns)
            self._deliver(_with(group, shadow))
            start = end


def _with(group: Group, shadow: tuple[ShadowColumn, ...]) -> Group:
    return msgspec.structs.replace(group, shadow=shadow)
