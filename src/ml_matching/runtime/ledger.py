"""Sending the prediction ledger's rows to the trainer, from the runtime's ledger process.

:class:`LedgerSender` (run by :mod:`.ledger_worker`, the ledger process) holds rows in a bounded
queue and posts them to the trainer's ``POST /predictions`` in batches from a thread of its own,
retrying with backoff while the trainer is unreachable; each row's ``predictionId`` makes a resend
harmless. A full queue drops the newest rows and counts them (``/metrics``, ``/health``): the
answer path never waits on the trainer. A batch the trainer refuses is sent again in parts (halved
when it was too large, row by row when its content was refused), so only the rows the trainer
refuses on their own are dropped.

Rows are encoded to JSON as they are queued, by the thread that made them, and the queue holds the
bytes. Encoded later by the sender, a row took 3.9 µs of CPU, its objects long gone from the cache,
against 1.5 µs while they are still there (``bench/experiment_cost.py``). A full queue drops rows
before they are encoded.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ml_matching.contract.ledger import LedgerRow

log = logging.getLogger("ml_matching")
#: The most rows one POST carries (a queued part never holds more).
BATCH_ROWS = 1000
#: How long a batch may wait to fill before it is sent (at 5,000 rows/s: batches of about 500).
LINGER_SECONDS = 0.1
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)
#: Answers that mean "not now": a timeout, a rate limit, a trainer older than the ledger (404, 405,
#: as the Node client reads them). The rows wait.
LATER = (404, 405, 408, 429)
#: Answers that refuse what a batch holds (the trainer stores all of a batch or none): its rows are
#: sent again one by one, and only those refused on their own are dropped.
CONTENT = (400, 409, 422)
#: Batches sent at a size halved by a 413 before it is doubled again (the oversized row that caused
#: it may be gone; a trainer whose limit stays costs one 413 in this many).
GROW_AFTER = 10
#: Why rows are dropped when the queue is full; logged at most once in this many seconds, with the
#: count since (a full queue drops rows on every request until the trainer catches up).
FULL = "the ledger queue is full"
DROPS_LOGGED_EVERY = 10.0
#: Rows per call of the encoder. One msgspec call cannot be interrupted: 1,000 rows held the GIL for
#: about 1.8 ms, and the event loop, waiting for it while another thread encoded, added 4–5 ms to
#: the p99 of /predict (bench/experiments.py). 100 rows hold it for about 0.2 ms.
ENCODE_ROWS = 100
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Encoded:
    """Queued rows as JSON: the items of an array, without its brackets, and how many they are."""

    items: bytes
    rows: int


@dataclass
class LedgerCounts:
    """What happened to the rows: queued now, sent (acknowledged), dropped (queue full, or refused)."""

    queued: int = 0
    sent: int = 0
    dropped: int = 0
    refused: int = 0
    last_error: str | None = None


class LedgerSender:
    """A bounded queue of ledger rows and the thread that sends them to the trainer."""

    def __init__(
        self, trainer_url: str, capacity: int, timeout: float = 10.0, linger: float = LINGER_SECONDS
    ) -> None:
        self.url = f"{trainer_url.rstrip('/')}/predictions"
        self.capacity = capacity
        self.timeout = timeout
        self.linger = linger
        self.counts = LedgerCounts()
        #: The most rows one POST carries: BATCH_ROWS, halved each time the trainer answers 413.
        self.batch_rows = BATCH_ROWS
        self._singles = 0  # rows at the front of the queue to send one a POST (a refused batch's)
        self._sent_at_size = 0  # batches sent since batch_rows last changed
        self._rows: deque[Encoded] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # the kind of failure last logged (None: sending works)
        self._full_unlogged = 0  # rows dropped by a full queue since it was last logged
        self._full_logged_at = -DROPS_LOGGED_EVERY
        #: Told the number of rows each time some are dropped, and why (the service's metrics).
        self.on_drop: Callable[[int, str], None] = lambda n, why: None
        #: Told the number of rows each time the trainer took or refused some (the ledger process
        #: reports at once: rows it settled must not count as lost should it die right after).
        self.on_settled: Callable[[int], None] = lambda n: None

    def put(self, rows: list[LedgerRow]) -> None:
        """Queue ``rows`` (no wait), encoded; past the capacity the rest are dropped and counted."""
        kept = min(len(rows), max(self.capacity - self.counts.queued, 0))  # read unlocked: checked below
        parts = encode(rows[:kept])  # never the rows it drops
        with self._wake:
            room = max(self.capacity - self.counts.queued, 0)
            if room < kept:  # another thread queued rows meanwhile (the ledger process has one putter)
                kept = room
                parts = encode(rows[:kept])
            self._queue(parts, kept)
        if kept < len(rows):
            self._drop(len(rows) - kept, FULL)

    def _queue(self, parts: list[Encoded], rows: int) -> None:
        """Append ``parts`` of ``rows`` rows and wake the sender when it waits for them. Under the lock."""
        was_empty = not self._rows
        self._rows.extend(parts)
        self.counts.queued += rows
        if was_empty or self.counts.queued >= BATCH_ROWS:  # the sender waits for nothing else
            self._wake.notify()

    def _drop(self, n: int, why: str) -> None:
        with self._wake:  # put() runs on the ledger process's main thread, refusals on the sender's
            self.counts.dropped += n
            said = self._full_to_say(n) if why == FULL else 0
        if said:
            log.warning(
                "ledger: %d rows dropped: %s (LEDGER_QUEUE=%d rows, the trainer at %s: %s)",
                said, why, self.capacity, self.url, self.counts.last_error or "taking rows",
            )  # fmt: skip
        self.on_drop(n, why)

    def _full_to_say(self, n: int) -> int:
        """The rows a full queue dropped to log now, ``n`` among them: all since the last line once
        DROPS_LOGGED_EVERY seconds have passed, else 0 (they are told with the next). Under the lock."""
        self._full_unlogged += n
        now = time.monotonic()
        if now < self._full_logged_at + DROPS_LOGGED_EVERY:
            return 0
        said, self._full_unlogged, self._full_logged_at = self._full_unlogged, 0, now
        return said

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ledger", daemon=True)
            self._thread.start()

    def stop(self, flush_seconds: float = 5.0) -> None:
        """Stop the thread after trying, for up to ``flush_seconds``, to send what is queued."""
        deadline = time.monotonic() + flush_seconds
        while self._rows and time.monotonic() < deadline and not self._unreachable():
            time.sleep(0.05)
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)

    def wait_sent(self, seconds: float) -> bool:
        """Whether every queued row was sent within ``seconds`` (for tests and shutdown)."""
        deadline = time.monotonic() + seconds
        while self._rows and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._rows

    def _run(self) -> None:
        failures = 0
        while (batch := self._next_batch()) is not None:
            rows = sum(part.rows for part in batch)
            try:
                outcome = self._send(batch, rows)
            except Exception:  # a failure _send does not know must not end the thread (rows would pile up)
                log.exception("ledger: sending %d rows failed unexpectedly; they are sent again", rows)
                outcome = "retry"
            if outcome == "retry":
                time.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1
                continue
            failures = 0
            if rows > 1 and outcome in ("too large", "refused"):
                self._split_up(outcome, rows)
                continue
            with self._wake:
                for _ in batch:  # the batch is still at the front: only put() appends, at the back
                    self._rows.popleft()
                self.counts.queued -= rows
                self._singles = max(self._singles - rows, 0)
            if outcome == "sent":
                self.counts.sent += rows
                self._grow()
            else:
                self.counts.refused += rows
                self._drop(rows, "the trainer refused the rows")
            self.on_settled(rows)

    def _next_batch(self) -> list[Encoded] | None:
        """The parts at the front of the queue that make the next POST, once there are rows (None:
        the sender is stopping)."""
        with self._wake:
            while not self._rows and not self._stopping:
                self._wake.wait()
            # Linger for the batch to fill: sent as they come, rows went a few at a time, each
            # POST a connection and a transaction, and that cost more than the scoring itself.
            deadline = time.monotonic() + self.linger
            limit = 1 if self._singles else self.batch_rows
            while self.counts.queued < limit and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
            if self._stopping:
                return None
            return _front(self._rows, limit)

    def _split_up(self, outcome: str, rows: int) -> None:
        """The trainer refused a batch of ``rows``. Too large (413: its MAX_BODY_BYTES is smaller than
        a batch): every later batch would be too, so send at most half as many rows a POST from now
        on. Refused for its content (the trainer stores all of a batch or none): send its rows one
        by one, so that one bad row does not lose the rest with it (as the Node client does)."""
        if outcome == "too large":
            self.batch_rows = max(rows // 2, 1)
            self._sent_at_size = 0
            log.warning(
                "ledger: the trainer refused a batch of %d rows as too large (413); sending at most %d "
                "rows a batch from now on (raise the trainer's MAX_BODY_BYTES to send bigger ones)",
                rows, self.batch_rows,
            )  # fmt: skip
            return
        self._singles = rows
        log.warning(
            "ledger: the trainer refused a batch of %d rows (%s); sending them one by one to keep the "
            "rows it takes",
            rows, self.counts.last_error,
        )  # fmt: skip

    def _grow(self) -> None:
        """After GROW_AFTER batches sent at a size a 413 halved, double it again (up to BATCH_ROWS)."""
        if self.batch_rows >= BATCH_ROWS:
            return
        self._sent_at_size += 1
        if self._sent_at_size >= GROW_AFTER:
            self.batch_rows = min(self.batch_rows * 2, BATCH_ROWS)
            self._sent_at_size = 0

    def _unreachable(self) -> bool:
        error = self.counts.last_error
        return error is not None and error.startswith("unreachable")

    def _send(self, batch: list[Encoded], rows: int) -> str:
        request = urllib.request.Request(self.url, body(batch), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            self.counts.last_error = f"{exc.code} {detail}"
            if exc.code == 413 and rows > 1:
                return "too large"
            if exc.code in CONTENT and rows > 1:
                return "refused"  # sent again row by row
            if 400 <= exc.code < 500 and exc.code not in LATER:
                log.warning("ledger: the trainer refused %d rows (%d %s); dropped", rows, exc.code, detail)
                return "rejected"
            self._waiting(str(exc.code), f"answers {exc.code} ({detail})")
            return "retry"
        except (OSError, http.client.HTTPException) as exc:
            # HTTPException: an answer that broke off (IncompleteRead) or was no HTTP at all; the
            # batch may have been stored, and its ids make sending it again harmless.
            self._waiting("unreachable", f"is unreachable ({exc})")
            self.counts.last_error = f"unreachable: {exc}"
            return "retry"
        if self._failing is not None:
            log.info("ledger: the trainer at %s takes rows again", self.url)
            self._failing = None
        self.counts.last_error = None
        return "sent"

    def _waiting(self, kind: str, what: str) -> None:
        """Log that rows wait because the trainer ``what``: once for each kind of failure in a row
        (a trainer that answers 507 for an hour, or stays unreachable, is said once, not at every
        retry; a change from one to the other is said again)."""
        if kind != self._failing:
            self._failing = kind
            log.warning(
                "ledger: the trainer at %s %s; rows wait in the queue and are sent again", self.url, what
            )


def encode(rows: list[LedgerRow]) -> list[Encoded]:
    """``rows`` as JSON, in parts of at most BATCH_ROWS rows, ENCODE_ROWS rows per call."""
    parts = []
    for start in range(0, len(rows), BATCH_ROWS):
        part = rows[start : start + BATCH_ROWS]
        items = [_encode(part[i : i + ENCODE_ROWS])[1:-1] for i in range(0, len(part), ENCODE_ROWS)]
        parts.append(Encoded(b",".join(items), len(part)))
    return parts


def _front(queue: deque[Encoded], limit: int = BATCH_ROWS) -> list[Encoded]:
    """The parts at the front of ``queue`` that make one POST of at least one row and at most
    ``limit`` (a first part with more rows is split in the queue first)."""
    if queue[0].rows > limit:
        queue.extendleft(reversed(_split(queue.popleft(), limit)))
    batch: list[Encoded] = []
    rows = 0
    for part in queue:
        if batch and rows + part.rows > limit:
            break
        batch.append(part)
        rows += part.rows
    return batch


def _split(part: Encoded, limit: int) -> list[Encoded]:
    """``part`` as parts of at most ``limit`` rows, in order."""
    items = msgspec.json.decode(b"[" + part.items + b"]", type=list[msgspec.Raw])
    return [
        Encoded(b",".join(bytes(item) for item in items[i : i + limit]), len(items[i : i + limit]))
        for i in range(0, len(items), limit)
    ]


def body(batch: list[Encoded]) -> bytes:
    """``POST /predictions``'s body (a ``LedgerBatch``) of the encoded parts."""
    return b'{"rows":[' + b",".join(part.items for part in batch) + b"]}"


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("detail", ""))[:300]
    except (ValueError, AttributeError, OSError, http.client.HTTPException):  # no JSON, or cut short
        return exc.reason if isinstance(exc.reason, str) else ""
