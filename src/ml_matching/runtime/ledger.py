"""The runtime's side of the prediction ledger: rows made on the request path, sent in the background.

:class:`LedgerSender` holds rows in a bounded queue and posts them to the trainer's
``POST /predictions`` in batches from a thread of its own, retrying with backoff while the trainer
is unreachable; each row's ``predictionId`` makes a resend harmless. A full queue drops the newest
rows and counts them (``/metrics``, ``/health``): the answer path never waits on the trainer.
"""

from __future__ import annotations

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
BATCH_ROWS = 1000
#: How long a batch may wait to fill before it is sent (at 5,000 rows/s: batches of about 500).
LINGER_SECONDS = 0.1
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)
#: Rows encoded per hold of the GIL. msgspec encodes a batch in one C call that cannot be
#: interrupted: 1,000 rows held the GIL for about 1.8 ms, and the event loop, waiting for it, added
#: 4–5 ms to the p99 of /predict (bench/experiments.py). 100 rows hold it for about 0.2 ms.
ENCODE_ROWS = 100


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
        self, trainer_url: str | None, capacity: int, timeout: float = 10.0, linger: float = LINGER_SECONDS
    ) -> None:
        self.url = f"{trainer_url.rstrip('/')}/predictions" if trainer_url else None
        self.capacity = capacity
        self.timeout = timeout
        self.linger = linger
        self.counts = LedgerCounts()
        self._rows: deque[LedgerRow] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._encode = msgspec.json.Encoder().encode
        #: Told the number of rows each time some are dropped, and why (the service's metrics).
        self.on_drop: Callable[[int, str], None] = lambda n, why: None

    def put(self, rows: list[LedgerRow]) -> None:
        """Queue ``rows`` (no wait); past the capacity the rest are dropped and counted."""
        if self.url is None:
            self._drop(len(rows), "no trainer (ML_TRAINER_URL is not set)")
            return
        with self._wake:
            room = self.capacity - len(self._rows)
            kept = rows if room >= len(rows) else rows[: max(room, 0)]
            was_empty = not self._rows
            self._rows.extend(kept)
            self.counts.queued = len(self._rows)
            if was_empty or len(self._rows) >= BATCH_ROWS:  # the sender waits for nothing else
                self._wake.notify()
        if len(kept) < len(rows):
            self._drop(len(rows) - len(kept), "the ledger queue is full")

    def _drop(self, n: int, why: str) -> None:
        self.counts.dropped += n
        self.on_drop(n, why)

    def start(self) -> None:
        if self.url is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ledger", daemon=True)
            self._thread.start()

    def stop(self, flush_seconds: float = 5.0) -> None:
        """Stop the thread after trying, for up to ``flush_seconds``, to send what is queued."""
        deadline = time.monotonic() + flush_seconds
        while self._rows and time.monotonic() < deadline and self.counts.last_error is None:
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
        while True:
            with self._wake:
                while not self._rows and not self._stopping:
                    self._wake.wait()
                # Linger for the batch to fill: sent as they come, rows went a few at a time, each
                # POST a connection and a transaction, and that cost more than the scoring itself.
                deadline = time.monotonic() + self.linger
                while len(self._rows) < BATCH_ROWS and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                if self._stopping:
                    return
                batch = [self._rows[i] for i in range(min(len(self._rows), BATCH_ROWS))]
            outcome = self._send(batch)
            if outcome == "retry":
                time.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1
                continue
            failures = 0
            with self._wake:
                for _ in batch:  # the batch is still at the front: only put() appends, at the back
                    self._rows.popleft()
                self.counts.queued = len(self._rows)
            if outcome == "sent":
                self.counts.sent += len(batch)
            else:
                self.counts.refused += len(batch)
                self._drop(len(batch), "the trainer refused the batch")

    def _body(self, batch: list[LedgerRow]) -> bytes:
        """``LedgerBatch(rows=batch)`` as JSON, encoded ENCODE_ROWS rows at a time with the GIL
        given up between them (``time.sleep(0)``), so that serving never waits long for it."""
        parts = []
        for start in range(0, len(batch), ENCODE_ROWS):
            parts.append(self._encode(batch[start : start + ENCODE_ROWS])[1:-1])  # the array's items
            time.sleep(0)
        return b'{"rows":[' + b",".join(parts) + b"]}"

    def _send(self, batch: list[LedgerRow]) -> str:
        assert self.url is not None
        body = self._body(batch)
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                log.warning(
                    "ledger: the trainer refused %d rows (%d %s); dropped", len(batch), exc.code, detail
                )
                self.counts.last_error = f"{exc.code} {detail}"
                return "refused"
            self.counts.last_error = f"{exc.code} {detail}"
            return "retry"
        except (OSError, TimeoutError) as exc:
            if self.counts.last_error is None:
                log.warning(
                    "ledger: the trainer at %s is unreachable (%s); rows wait in the queue", self.url, exc
                )
            self.counts.last_error = f"unreachable: {exc}"
            return "retry"
        if self.counts.last_error is not None:
            log.info("ledger: the trainer at %s takes rows again", self.url)
        self.counts.last_error = None
        return "sent"


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("detail", ""))[:300]
    except (ValueError, AttributeError, OSError):
        return exc.reason if isinstance(exc.reason, str) else ""
