"""The ledger process: makes ledger rows of the groups the runtime hands it, and sends them to the trainer.

Started by :class:`~.ledger_process.LedgerProcess` as ``python -m ml_matching.runtime.ledger_worker``,
with its settings in ``ML_MATCHING_LEDGER_PROCESS`` (JSON: the trainer's URL, the queue's capacity,
the sender's timeout and linger, the log level). It reads frames (:mod:`.ledger_wire`) from its
stdin: each :class:`~.ledger_wire.Group` is made into rows, which go to the trainer from a
:class:`~.ledger.LedgerSender`, with its batching, retries and bounded queue. On its stdout it
reports its counts when they change (at most every REPORT_SECONDS), and at once when the trainer
takes or refuses rows: a ledger process killed right after would otherwise leave them counted as
lost.

It ends when told (:class:`~.ledger_wire.Stop`) or when its stdin ends (the runtime went away, even
killed): either way it sends what it holds first, for up to the flush time. It logs to stderr, as the
runtime does. It runs in a session of its own and ignores SIGINT and SIGTERM: a signal meant for the
whole group (Ctrl-C, a supervisor stopping a process group) must not end it while the runtime is
still handing it rows; the runtime's stop, or its end, ends it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections import Counter
from typing import IO

from ml_matching.http.logs import configure_logging
from ml_matching.runtime.ledger import LedgerSender
from ml_matching.runtime.ledger_wire import (
    SETTINGS_VARIABLE,
    Group,
    Report,
    Stop,
    frame,
    read_frame,
    to_ledger,
)

#: How often the counts are reported, when they changed.
REPORT_SECONDS = 0.05
#: How long what is queued may take to send when the runtime went away without a stop.
FLUSH_SECONDS = 5.0


class Worker:
    """Takes the runtime's messages into a sender, and reports the sender's counts."""

    def __init__(self, sender: LedgerSender, out: IO[bytes], report_seconds: float = REPORT_SECONDS) -> None:
        self.sender = sender
        self.report_seconds = report_seconds
        self.received = 0
        self._out = out
        self._gone = False  # the runtime closed its end
        # The drops (sender's thread and this one), the output, and a group's rows put and counted
        # as one step (a report between the two would count them as queued here and sent at once).
        # Re-entrant: a put that finds the queue full counts its drop under it.
        self._lock = threading.RLock()
        self._drops: Counter[str] = Counter()
        self._said: Report | None = None
        self._done = threading.Event()
        sender.on_drop = self._dropped
        sender.on_settled = lambda _: self.report()

    def _dropped(self, n: int, why: str) -> None:
        with self._lock:
            self._drops[why] += n

    def run(self, stdin: IO[bytes]) -> None:
        """Take messages until told to stop or stdin ends; then send what is queued, and report."""
        self.sender.start()
        reporter = threading.Thread(target=self._report_often, name="ledger-report", daemon=True)
        reporter.start()
        flush = FLUSH_SECONDS
        try:
            while (payload := read_frame(stdin)) is not None:
                message = to_ledger(payload)
                if isinstance(message, Stop):
                    flush = message.flush_seconds
                    break
                self.take(message)
        finally:
            self._done.set()
            reporter.join()
            self.sender.stop(flush)
            self.report()

    def take(self, group: Group) -> None:
        rows = group.rows()
        with self._lock:
            self.sender.put(rows)
            self.received += len(rows)  # the runtime counts these rows queued here now

    def _report_often(self) -> None:
        while not self._done.wait(self.report_seconds):
            self.report()

    def report(self) -> None:
        """Write the counts when they changed since they were last written."""
        c = self.sender.counts
        with self._lock:
            now = Report(self.received, c.queued, c.sent, c.refused, dict(self._drops), c.last_error)
            if now == self._said or self._gone:
                return
            self._said = now
            try:
                self._out.write(frame(now))
                self._out.flush()
            except (OSError, ValueError):  # the runtime is gone: no one to tell, the rows still go
                self._gone = True


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    configure_logging(int(settings["log_level"]))
    sender = LedgerSender(settings["url"], int(settings["capacity"]), settings["timeout"], settings["linger"])
    report_seconds = float(settings.get("report_seconds", REPORT_SECONDS))
    Worker(sender, sys.stdout.buffer, report_seconds).run(sys.stdin.buffer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
