"""The prediction ledger, seen from the serving process: a process of its own makes and sends the rows.

Made, encoded and sent in the serving process, the ledger took about 16 µs of a keyed request's
55 in-process, and under load its sending thread held the GIL the event loop was waiting for. So
the serving process only hands each scored group's facts to a ledger process
(:mod:`.ledger_worker`) through a pipe (:mod:`.ledger_wire`), and that process, on a CPU of its
own, makes the rows, encodes them and sends them to the trainer with the same batching, retries
and bounded queue (:class:`~.ledger.LedgerSender`).

:class:`LedgerProcess` starts that process when there is a trainer to send to (``ML_TRAINER_URL``),
hands it frames from a thread of its own (the event loop only appends them), reads its counts
(``/health``, ``/metrics``), and starts it again when it ends unasked, counting the rows it held as
dropped. Frames wait in the serving process while the ledger process is behind or being started;
past the queue's capacity they are dropped and counted, never waited for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from ml_matching.runtime.ledger import LINGER_SECONDS, LedgerCounts
from ml_matching.runtime.ledger_wire import SETTINGS_VARIABLE, Group, Report, Stop, frame, read_frame, report

log = logging.getLogger("ml_matching")
NO_TRAINER = "no trainer (ML_TRAINER_URL is not set)"
ENDED = "the ledger process ended"
BEHIND = "the ledger process is behind"
#: How long frames wait to be written together. Each write wakes a thread, which takes the GIL
#: from the event loop: at 10 ms, handing over cost 3.8 µs of a keyed request in-process, at
#: 100 ms 0.1 µs (``bench/experiment_parts.py``, ``not handed``). Rows wait for the trainer's
#: batches longer than that anyway (LINGER_SECONDS in the ledger process).
HAND_SECONDS = 0.1
#: Seconds before a ledger process that ended unasked is started again.
RESTART_SECONDS = 1.0
_NO_REPORT = Report(0, 0, 0, 0, {}, None)


class LedgerProcess:
    """Hands ledger rows to the ledger process, and knows what became of them."""

    def __init__(
        self,
        trainer_url: str | None,
        capacity: int,
        timeout: float = 10.0,
        linger: float = LINGER_SECONDS,
        log_level: int = logging.INFO,
        report_seconds: float | None = None,
    ) -> None:
        self.trainer_url = trainer_url or None
        self.capacity = capacity
        config = {"url": trainer_url, "capacity": capacity, "timeout": timeout, "linger": linger}
        if report_seconds is not None:  # how often the ledger process reports besides each send
            config["report_seconds"] = report_seconds
        self._config = json.dumps({**config, "log_level": log_level})
        self._timeout = timeout
        #: Told the number of rows each time some are dropped, and why (the service's metrics).
        self.on_drop: Callable[[int, str], None] = lambda n, why: None
        self._lock = threading.Condition(threading.Lock())  # taken by the event loop once a group
        self._frames: list[bytes] = []  # waiting to be written
        self._waiting = 0  # their rows
        self._handed = 0  # rows written to the running process
        self._report = _NO_REPORT  # its last report
        self._before = LedgerCounts()  # what the processes that ended did (sent, dropped, refused)
        self._dropped_here = 0
        self._why: str | None = None  # why no process runs, until the next one reports
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = False
        #: One ended unasked and another is to be started: frames wait for it, even at a stop.
        self._restarting = False
        self._threads: list[threading.Thread] = []

    @property
    def counts(self) -> LedgerCounts:
        """Rows queued (here, in the pipe, in the ledger process), sent, dropped, refused."""
        with self._lock:
            r, before = self._report, self._before
            return LedgerCounts(
                queued=self._waiting + max(self._handed - r.received, 0) + r.queued,
                sent=before.sent + r.sent,
                dropped=before.dropped + self._dropped_here + sum(r.drops.values()),
                refused=before.refused + r.refused,
                last_error=r.last_error or self._why,
            )

    def put_group(self, group: Group) -> None:
        """Hand a scored group's rows to the ledger process (no wait); past the capacity, or with
        no trainer, they are dropped and counted."""
        rows = len(group.served)
        if self.trainer_url is None:
            self._drop(rows, NO_TRAINER)
            return
        data = frame(group)
        with self._lock:
            fits = self._waiting + rows <= self.capacity and not self._stopping
            if fits:
                self._frames.append(data)
                self._waiting += rows
                if len(self._frames) == 1:
                    self._lock.notify()
        if not fits:
            self._drop(rows, ENDED if self._stopping else BEHIND)

    def _drop(self, n: int, why: str) -> None:
        with self._lock:
            self._dropped_here += n
        self.on_drop(n, why)

    def start(self) -> None:
        if self.trainer_url is None or self._threads:
            return
        self._process = self._spawn()
        self._threads = [
            threading.Thread(target=self._write, name="ledger-hand", daemon=True),
            threading.Thread(target=self._read, name="ledger-read", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Its settings go in its environment, not on its command line, which any local user can
        # read (the trainer's URL may hold credentials). A session of its own: a Ctrl-C or a
        # signal to the runtime's process group is the runtime's to handle; it stops its ledger
        # process itself (or the ledger process sees the pipe close).
        env = {**os.environ, SETTINGS_VARIABLE: self._config}
        cmd = [sys.executable, "-m", "ml_matching.runtime.ledger_worker"]
        return subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True
        )

    def _write(self) -> None:
        """Write the waiting frames to the ledger process, a few turns' at a time, until stopped;
        while there is none (it is being started again) they wait, up to the capacity."""
        while True:
            with self._lock:
                while (not self._frames or self._process is None) and not self._stopping:
                    self._lock.wait()
                while self._stopping and self._process is None and self._restarting:
                    self._lock.wait()  # a stop in the restart gap: the next process takes what waits
                if not self._stopping:
                    self._lock.wait(HAND_SECONDS)
                    if self._process is None:
                        continue  # it ended meanwhile: the frames wait for the next one
                frames, rows = self._frames, self._waiting
                self._frames, self._waiting = [], 0
                process, stopping = self._process, self._stopping
                if process is not None:
                    self._handed += rows  # counted as queued there while they are written
            if frames:
                self._write_to(process, b"".join(frames), rows)
            if stopping:
                return

    def _write_to(self, process: subprocess.Popen[bytes] | None, data: bytes, rows: int) -> None:
        """Write ``data`` (``rows`` rows, already counted as handed to ``process``, unless it is None)."""
        try:
            if process is None or process.stdin is None:
                raise ValueError("no ledger process")
            process.stdin.write(data)
            process.stdin.flush()
            return
        except (OSError, ValueError):  # it ended (ValueError: its pipe was closed)
            with self._lock:
                # While it is still the running one, take the rows back and drop them here; once it
                # is folded away (_ended), they were counted with the rows it held.
                ours = process is None or process is self._process
                if process is not None and ours:
                    self._handed -= rows
        if ours and rows:
            self._drop(rows, ENDED)

    def _read(self) -> None:
        """Read the ledger process's reports; when it ends unasked, count what it held as dropped
        and start another. Nothing it meets ends this thread: without it no process would be
        started again, and the frames would wait for ever. Should it end all the same, a writer
        at a stop no longer waits for the process it would have started."""
        try:
            self._follow_and_restart()
        finally:
            with self._lock:
                self._restarting = False
                self._lock.notify_all()

    def _follow_and_restart(self) -> None:
        while True:
            process = self._process
            assert process is not None
            code = self._follow(process)
            lost, stopping = self._ended(code)
            if lost:
                self.on_drop(lost, ENDED)
            if stopping:
                if lost:
                    log.warning("ledger: %d rows were not sent before the ledger process stopped", lost)
                return
            log.error(
                "ledger: the ledger process ended (exit code %s); %d rows it held are lost; starting "
                "another in %.0f s", code, lost, RESTART_SECONDS,
            )  # fmt: skip
            if not self._restart():
                return

    def _follow(self, process: subprocess.Popen[bytes]) -> int | None:
        """Take ``process``'s reports until it ends (it is killed when one cannot be read); its exit code."""
        assert process.stdout is not None
        try:
            while (payload := read_frame(process.stdout)) is not None:
                self._took(report(payload))
        except Exception:  # a report that does not decode: this process cannot be followed
            log.exception("ledger: the ledger process's report could not be read; it is stopped")
            process.kill()
        with contextlib.suppress(OSError):
            process.stdout.close()
        code = process.wait()
        _close(process)
        return code

    def _restart(self) -> bool:
        """Start another ledger process, RESTART_SECONDS after the last ended, trying again as long
        as starting fails (False: none was started, the runtime stopping meanwhile). A stop in
        the gap starts it at once when rows wait for it, to send them and end; with none waiting,
        or when starting fails then, none is started and the rows are dropped."""
        try:
            return self._start_again()
        finally:
            with self._lock:
                self._restarting = False
                self._lock.notify_all()  # a writer at a stop waits for this

    def _start_again(self) -> bool:
        wait = RESTART_SECONDS
        while True:
            with self._lock:
                self._lock.wait_for(self._is_stopping, timeout=wait)
                if self._is_stopping() and not self._frames:
                    return False
            try:
                process = self._spawn()  # not under the lock: the event loop takes it
            except OSError as exc:
                if self._is_stopping():
                    log.error("ledger: starting a ledger process at the stop failed (%s)", exc)
                    return False
                wait = min(wait * 2, 30.0)
                log.error("ledger: starting a ledger process failed (%s); trying again in %.0f s", exc, wait)
                continue
            with self._lock:
                published = not self._is_stopping() or bool(self._frames)
                if published:
                    self._process = process
                    self._lock.notify_all()  # the writer waits for it
            if published:
                return True
            _close(process)  # the runtime stopped meanwhile: the new process sees its pipe close
            process.wait()
            return False

    def _is_stopping(self) -> bool:  # read anew each time (another thread sets it)
        return self._stopping

    def _took(self, now: Report) -> None:
        with self._lock:
            before, self._report, self._why = self._report, now, None
        for why, n in now.drops.items():
            if n > before.drops.get(why, 0):
                self.on_drop(n - before.drops.get(why, 0), why)

    def _ended(self, code: int | None) -> tuple[int, bool]:
        """Fold the ended process's counts into those before it, and forget it (rows written to it
        from now on went with it): the rows it held, lost; and whether it was stopped."""
        with self._lock:
            r = self._report
            dropped = sum(r.drops.values())
            lost = max(self._handed - r.sent - dropped, 0)
            self._before = LedgerCounts(
                sent=self._before.sent + r.sent,
                dropped=self._before.dropped + dropped + lost,
                refused=self._before.refused + r.refused,
            )
            self._handed, self._report, self._process = 0, _NO_REPORT, None
            self._restarting = not self._stopping
            if not self._stopping:
                self._why = f"{ENDED} (exit code {code}); another is being started"
            return lost, self._stopping

    def stop(self, flush_seconds: float = 5.0) -> None:
        """Hand over what waits, let the ledger process send what it holds (for up to
        ``flush_seconds``) and end; wait for it. Rows handed over after this are dropped."""
        if not self._threads:
            return
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._threads[0].join()  # the writer hands over what waits, then ends
        process = self._process
        if process is not None:
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.write(frame(Stop(flush_seconds)))
                process.stdin.flush()
            try:
                process.wait(timeout=flush_seconds + self._timeout + 5)
            except subprocess.TimeoutExpired:
                log.error("ledger: the ledger process did not end in time; killed")
                process.kill()
        self._threads[1].join(timeout=5)

    def wait_sent(self, seconds: float) -> bool:
        """Whether every row handed over was sent (or dropped) within ``seconds`` (tests, shutdown)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.counts.queued == 0:
                return True
            time.sleep(0.01)
        return self.counts.queued == 0


def _close(process: subprocess.Popen[bytes]) -> None:
    """Close the pipe to an ended process (what it still buffered cannot reach it)."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
