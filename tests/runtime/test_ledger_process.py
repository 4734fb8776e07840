"""The ledger process: the rows it makes of what the runtime hands it, and what becomes of them when
it dies, falls behind, or the runtime goes away (a real process, a trainer that answers as the real
one does)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import msgspec
import numpy as np
import pytest

from ml_matching.contract.assignment import HASH_VERSION
from ml_matching.contract.ledger import LedgerRow
from ml_matching.runtime import ledger_process
from ml_matching.runtime.ledger import LedgerCounts
from ml_matching.runtime.ledger_process import BEHIND, ENDED, NO_TRAINER, LedgerProcess
from ml_matching.runtime.ledger_wire import (
    SETTINGS_VARIABLE,
    Group,
    Stop,
    frame,
    read_frame,
    report,
    to_ledger,
)
from ml_matching.runtime.ledger_worker import Worker
from ml_matching.runtime.scoring import new_prediction_id
from tests.conftest import GB_VERSION, RF_VERSION
from tests.runtime.fake_trainer import FakeTrainer
from tests.support import until

X = np.array([[0.1, 0.5], [0.7, 1.0], [0.0, 0.3333], [1.0, 0.25]], dtype=np.float32)
UNITS = ["ab" * 32, "cd" * 32, "ef" * 32]


def _group() -> Group:
    """A group as an experiment with a holdout records it: an arm's row, a keyless row (LEDGER=all),
    a row control served for a failing candidate, a live unit's row outside the experiment."""
    ids = [new_prediction_id() for _ in range(4)]
    served = [
        (ids[0], RF_VERSION, 0.25, 1.5, "exp-1", "candidate", 5000, UNITS[0], False, None, None),
        (ids[1], RF_VERSION, 0.5, None, None, None, None, None, False, None, None),
        (ids[2], GB_VERSION, 0.75, 2.0, "exp-1", "candidate", 5000, UNITS[1], True, "x raised", "h-1"),
        (ids[3], RF_VERSION, 0.125, 0.5, None, "live", 9800, UNITS[2], False, None, "h-1"),
    ]
    return Group("2026-12-02T00:00:00.000Z", 3, ("a", "b"), X.tobytes(), served)


def _expected(group: Group) -> list[LedgerRow]:
    """The rows, written out field by field (not as Group.rows makes them)."""
    at, f = group.at, [{"a": float(a), "b": float(b)} for a, b in X]
    ids = [s[0] for s in group.served]
    return [
        LedgerRow(ids[0], at, RF_VERSION, 0.25, f[0], "exp-1", 3, "candidate", 5000, UNITS[0], HASH_VERSION, ms=1.5),
        LedgerRow(ids[1], at, RF_VERSION, 0.5, f[1]),
        LedgerRow(
            ids[2], at, GB_VERSION, 0.75, f[2], "exp-1", 3, "candidate", 5000, UNITS[1], HASH_VERSION, True,
            "x raised", 2.0, holdout="h-1",
        ),
        LedgerRow(
            ids[3], at, RF_VERSION, 0.125, f[3], None, None, "live", 9800, UNITS[2], HASH_VERSION, ms=0.5,
            holdout="h-1",
        ),
    ]  # fmt: skip


def test_a_group_crosses_the_pipe_and_becomes_the_rows_it_served() -> None:
    group = _group()
    stream = io.BytesIO(frame(group) + frame(Stop(2.5)))
    again = to_ledger(read_frame(stream) or b"")
    assert again == group
    assert again.rows() == _expected(group)
    assert _expected(group)[2].features["b"] == float(np.float32(0.3333)) != 0.3333  # what the model saw
    assert to_ledger(read_frame(stream) or b"") == Stop(2.5)
    assert read_frame(stream) is None
    assert read_frame(io.BytesIO(frame(group)[:-1])) is None  # cut short: no message


def test_the_shadows_scores_become_each_row_s_own() -> None:
    """A shadow's probabilities go to their rows in order; a failed shadow gives each row its reason."""
    group = msgspec.structs.replace(
        _group(), shadow=(("s1", [0.1, 0.2, 0.3, 0.4], None), ("s2", None, "RuntimeError: boom"))
    )
    rows = to_ledger(read_frame(io.BytesIO(frame(group))) or b"").rows()
    assert [[(s.version, s.probability, s.error) for s in rows[i].shadow] for i in (0, 2)] == [
        [("s1", p, None), ("s2", None, "RuntimeError: boom")] for p in (0.1, 0.3)
    ]
    assert rows[1].shadow == ()  # a keyless row (LEDGER=all) is outside the experiment


def test_a_frame_of_another_shape_is_refused_by_name() -> None:
    bad = frame(Stop(1.0)).replace(b"Stop", b"Halt")
    with pytest.raises(msgspec.ValidationError, match="Halt"):
        to_ledger(read_frame(io.BytesIO(bad)) or b"")


def _rows(n: int) -> list[LedgerRow]:
    return [
        LedgerRow(new_prediction_id(), "2026-12-02T00:00:00.000Z", RF_VERSION, 0.5, {"a": 1.0})
        for _ in range(n)
    ]


def _ids(rows: list[LedgerRow]) -> list[str]:
    return sorted(r.prediction_id for r in rows)


def test_the_ledger_process_sends_every_row_it_is_handed() -> None:
    trainer = FakeTrainer()
    ledger = LedgerProcess(trainer.url, 1000, linger=0.0)
    drops: list[tuple[int, str]] = []
    ledger.on_drop = lambda n, why: drops.append((n, why))
    groups = [_group() for _ in range(3)]
    try:
        ledger.start()
        for group in groups:
            ledger.put_group(group)
        assert ledger.wait_sent(30), ledger.counts
        counts = ledger.counts
    finally:
        ledger.stop()
        trainer.close()
    expected = [row for group in groups for row in _expected(group)]
    assert sorted(trainer.rows(), key=lambda r: r.prediction_id) == sorted(
        expected, key=lambda r: r.prediction_id
    )
    assert (counts.queued, counts.sent, counts.dropped, drops) == (0, 12, 0, [])
    assert ledger.counts.sent == 12  # after the stop too


def test_rows_handed_just_before_a_stop_are_sent_before_it_returns() -> None:
    trainer = FakeTrainer()
    ledger = LedgerProcess(trainer.url, 1000)  # the sender lingers 0.1 s: the stop must not lose them
    group = _group()
    try:
        ledger.start()
        process = ledger._process
        ledger.put_group(group)
        ledger.stop(flush_seconds=20)
    finally:
        trainer.close()
    assert _ids(trainer.rows()) == _ids(_expected(group))
    assert (ledger.counts.sent, ledger.counts.queued, ledger.counts.dropped) == (4, 0, 0)
    assert process is not None and process.returncode == 0


def _killed_holding_a_group(ledger: LedgerProcess, trainer: FakeTrainer) -> subprocess.Popen[bytes]:
    """Start ``ledger``, hand it a group that ``trainer`` does not take yet, and kill its ledger
    process while it holds the group's rows; the process killed."""
    ledger.start()
    ledger.put_group(_group())
    until(lambda: ledger._report.received == 4 and trainer.posts >= 1)
    process = ledger._process
    assert process is not None
    process.send_signal(signal.SIGKILL)
    return process


def test_a_ledger_process_that_dies_is_counted_and_another_takes_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rows it held are dropped and counted (in /health, /metrics, the log); the next rows go."""
    monkeypatch.setattr(ledger_process, "RESTART_SECONDS", 0.05)
    trainer = FakeTrainer(status=507)  # rows wait in the ledger process
    ledger = LedgerProcess(trainer.url, 1000, linger=0.0)
    drops: list[tuple[int, str]] = []
    ledger.on_drop = lambda n, why: drops.append((n, why))
    try:
        first = _killed_holding_a_group(ledger, trainer)
        until(lambda: ledger._process is not first and ledger.counts.dropped == 4)
        assert drops == [(4, ENDED)]
        assert "the ledger process ended (exit code -9)" in (ledger.counts.last_error or "")
        trainer.recover()
        later = _group()
        ledger.put_group(later)
        assert ledger.wait_sent(30), ledger.counts
    finally:
        ledger.stop()
        trainer.close()
    assert _ids(trainer.rows()) == _ids(_expected(later))
    assert (ledger.counts.sent, ledger.counts.dropped, ledger.counts.queued) == (4, 4, 0)


def _into_the_gap(ledger: LedgerProcess) -> None:
    """Start ``ledger``, kill its ledger process, and wait until the next one is to be started."""
    ledger.start()
    first = ledger._process
    assert first is not None
    first.send_signal(signal.SIGKILL)
    until(lambda: ledger._process is None and ledger._restarting)


def _counting_spawns(ledger: LedgerProcess, monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The ledger processes ``ledger`` starts from now on."""
    spawned: list[subprocess.Popen[bytes]] = []
    spawn = ledger._spawn

    def counted() -> subprocess.Popen[bytes]:
        spawned.append(spawn())
        return spawned[-1]

    monkeypatch.setattr(ledger, "_spawn", counted)
    return spawned


def test_rows_handed_while_another_is_being_started_are_sent_at_a_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop in the gap before the next ledger process starts it at once, to send the rows that
    wait for it, rather than dropping them; it does not wait out the gap."""
    monkeypatch.setattr(ledger_process, "RESTART_SECONDS", 60.0)
    trainer = FakeTrainer()
    ledger = LedgerProcess(trainer.url, 1000, linger=0.0)
    drops: list[tuple[int, str]] = []
    ledger.on_drop = lambda n, why: drops.append((n, why))
    later = _group()
    try:
        _into_the_gap(ledger)
        spawned = _counting_spawns(ledger, monkeypatch)
        ledger.put_group(later)
        started = time.monotonic()
        ledger.stop(flush_seconds=20)
        took = time.monotonic() - started
    finally:
        trainer.close()
    assert _ids(trainer.rows()) == _ids(_expected(later))
    assert (ledger.counts.sent, ledger.counts.dropped, ledger.counts.queued, drops) == (4, 0, 0, [])
    assert [p.returncode for p in spawned] == [0] and took < 30


def test_a_stop_in_the_gap_with_nothing_waiting_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_process, "RESTART_SECONDS", 60.0)
    trainer = FakeTrainer()
    ledger = LedgerProcess(trainer.url, 1000, linger=0.0)
    try:
        _into_the_gap(ledger)
        spawned = _counting_spawns(ledger, monkeypatch)
        started = time.monotonic()
        ledger.stop()
        took = time.monotonic() - started
    finally:
        trainer.close()
    assert (spawned, ledger._process, ledger._restarting) == ([], None, False)
    assert took < 30 and not any(t.is_alive() for t in ledger._threads)


@pytest.mark.parametrize("status", [None, 401])
def test_rows_the_trainer_settled_are_not_lost_when_the_ledger_process_is_killed_right_after(
    status: int | None,
) -> None:
    """The ledger process reports as soon as the trainer takes (or refuses) rows, not only every
    50 ms: killed right after, its rows count as sent (or refused), not as lost. (Its timed reports
    are turned off here, so only the report made at the answer can tell.)"""
    trainer = FakeTrainer(status=status)
    ledger = LedgerProcess(trainer.url, 1000, linger=0.0, report_seconds=3600)
    group = _group()
    try:
        ledger.start()
        ledger.put_group(group)
        until(lambda: ledger.counts.sent + ledger.counts.refused == 4)
        process = ledger._process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        until(lambda: ledger._process is not process)
        counts = ledger.counts
    finally:
        ledger.stop()
        trainer.close()
    if status is None:
        assert _ids(trainer.rows()) == _ids(_expected(group))
        assert (counts.sent, counts.refused, counts.dropped, counts.queued) == (4, 0, 0, 0)
    else:  # refused rows are dropped once, for the refusal, not again as lost
        assert (counts.sent, counts.refused, counts.dropped, counts.queued) == (0, 4, 4, 0)


class _SendsAtOnce:
    """A sender whose thread takes the rows the moment they are put, and reports it (the worst
    timing the real one can have): the ledger process's report must never say they were sent
    before it says they were received."""

    def __init__(self) -> None:
        self.counts = LedgerCounts()
        self.on_drop: Any = None
        self.on_settled: Any = None

    def put(self, rows: list[LedgerRow]) -> None:
        def settle() -> None:
            self.counts.sent += len(rows)
            self.on_settled(len(rows))

        thread = threading.Thread(target=settle)
        thread.start()
        thread.join(timeout=0.2)  # a report it can make meanwhile comes before `received` counts them


def test_a_report_never_counts_rows_as_sent_before_received() -> None:
    out = io.BytesIO()
    worker = Worker(_SendsAtOnce(), out)  # type: ignore[arg-type]  # the sender's interface, not its class
    for _ in range(3):
        worker.take(_group())
    worker.report()
    out.seek(0)
    reports = []
    while (payload := read_frame(out)) is not None:
        reports.append(report(payload))
    assert reports[-1].sent == reports[-1].received == 12
    assert all(r.sent <= r.received for r in reports), reports


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_stop_does_not_wait_for_a_reader_that_ended_in_the_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the thread that starts the next ledger process end unexpectedly, a stop still returns."""
    monkeypatch.setattr(ledger_process, "RESTART_SECONDS", 60.0)
    trainer = FakeTrainer(status=507)  # rows wait in the ledger process: its end loses them
    ledger = LedgerProcess(trainer.url, 1000, linger=0.0)

    def broken(n: int, why: str) -> None:
        if why == ENDED:
            raise RuntimeError("the metrics failed")

    ledger.on_drop = broken
    try:
        _killed_holding_a_group(ledger, trainer)
        until(lambda: not ledger._threads[1].is_alive())
        ledger.put_group(_group())  # waits for a process that will not come
        stopping = threading.Thread(target=ledger.stop, daemon=True)
        stopping.start()
        stopping.join(timeout=20)
        assert not stopping.is_alive(), "the stop waited for a ledger process no one would start"
    finally:
        trainer.close()


def test_the_ledger_process_sends_what_it_holds_when_the_runtime_is_gone() -> None:
    """Killed, the runtime closes both pipes without a stop: its ledger process still sends its rows,
    then ends quietly (no one is left to report to)."""
    trainer = FakeTrainer(status=507, times=1)  # the first batch waits for a retry
    settings = {
        "url": trainer.url,
        "capacity": 100,
        "timeout": 10,
        "linger": 0.0,
        "log_level": logging.WARNING,
    }
    cmd = [sys.executable, "-m", "ml_matching.runtime.ledger_worker"]
    env = {**os.environ, SETTINGS_VARIABLE: json.dumps(settings)}
    child = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    group = _group()
    try:
        child.stdin.write(frame(group))
        child.stdin.flush()
        until(lambda: trainer.posts >= 1)
        child.stdout.close()  # as the kernel closes them for a runtime killed
        child.stdin.close()
        assert child.wait(timeout=20) == 0
    finally:
        child.kill()
        trainer.close()
    with child.stderr:
        said = child.stderr.read().decode()
    assert _ids(trainer.rows()) == _ids(_expected(group))
    assert "Traceback" not in said and "Exception ignored" not in said, said


def test_rows_being_written_to_a_ledger_process_that_is_behind_count_as_queued() -> None:
    """While the ledger process reads nothing (stopped here), the pipe fills and the writer waits
    in the middle of a write: those rows are still queued (in /health, for wait_sent), then sent."""
    trainer = FakeTrainer()
    ledger = LedgerProcess(trainer.url, 100_000, linger=0.0)
    groups = [_group() for _ in range(300)]  # about 270 KB of frames: more than a pipe holds
    try:
        ledger.start()
        process = ledger._process
        assert process is not None
        until(lambda: ledger._report is not ledger_process._NO_REPORT)  # it runs, and reports
        process.send_signal(signal.SIGSTOP)
        try:
            for group in groups:
                ledger.put_group(group)
            until(lambda: not ledger._frames)  # all taken by the writer, which now waits on the pipe
            time.sleep(0.2)
            assert ledger.counts.queued == 1200
        finally:
            process.send_signal(signal.SIGCONT)
        assert ledger.wait_sent(60), ledger.counts
    finally:
        ledger.stop()
        trainer.close()
    assert (ledger.counts.sent, ledger.counts.dropped) == (1200, 0)
    assert len(trainer.rows()) == 1200


def test_a_ledger_process_that_cannot_be_started_is_tried_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ledger_process, "RESTART_SECONDS", 0.05)
    trainer = FakeTrainer()
    ledger = LedgerProcess(trainer.url, 1000, linger=0.0)
    spawn, calls = ledger._spawn, []

    def failing_once() -> Any:
        calls.append(1)
        if len(calls) == 2:  # the first start again, after the kill below
            raise OSError(11, "Resource temporarily unavailable")
        return spawn()

    monkeypatch.setattr(ledger, "_spawn", failing_once)
    try:
        ledger.start()
        first = ledger._process
        assert first is not None
        first.kill()
        until(lambda: len(calls) >= 3 and ledger._process is not None)
        group = _group()
        ledger.put_group(group)
        assert ledger.wait_sent(30), ledger.counts
    finally:
        ledger.stop()
        trainer.close()
    assert _ids(trainer.rows()) == _ids(_expected(group))
    assert "starting a ledger process failed ([Errno 11] Resource temporarily unavailable)" in caplog.text


def test_rows_handed_after_the_stop_are_dropped_not_kept() -> None:
    """A shadow thread slower than its stop still hands rows: they are counted, not left queued."""
    trainer = FakeTrainer()
    ledger = LedgerProcess(trainer.url, 1000, linger=0.0)
    drops: list[tuple[int, str]] = []
    ledger.on_drop = lambda n, why: drops.append((n, why))
    try:
        ledger.start()
        ledger.stop()
        ledger.put_group(_group())
    finally:
        trainer.close()
    assert (ledger.counts.queued, ledger.counts.dropped, drops) == (0, 4, [(4, ENDED)])


def test_rows_past_the_capacity_wait_for_no_one() -> None:
    """While the ledger process is behind (here: not started), rows past LEDGER_QUEUE are dropped
    and counted, and no one waits; with no trainer, every row is."""
    ledger = LedgerProcess("http://127.0.0.1:9", 5)
    drops: list[tuple[int, str]] = []
    ledger.on_drop = lambda n, why: drops.append((n, why))
    ledger.put_group(_group())
    ledger.put_group(_group())
    assert (ledger.counts.queued, ledger.counts.dropped, drops) == (4, 4, [(4, BEHIND)])
    none = LedgerProcess(None, 5)
    none.on_drop = lambda n, why: drops.append((n, why))
    none.put_group(_group())
    assert drops[1:] == [(4, NO_TRAINER)]
    assert (none.counts.dropped, none.counts.queued) == (4, 0)
