"""An experiment end to end, on real processes: a trainer, two runtime replicas, the CLI.

The experiment (a candidate at 50 % and a shadow) is started with ``ml-matching experiment start``;
both replicas follow it; a unit gets the same arm from either; every served row reaches the
trainer's ledger; outcomes posted by ``predictionId`` alone join their prediction; the per-arm
counts are exact. Then the trainer is killed with ``kill -9`` while the replicas send ledger
batches: no acknowledged row is lost and none is stored twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ml_matching.contract.experiment import read_experiment
from ml_matching.contract.ids import PredictionIds
from ml_matching.contract.ledger import LedgerRow
from ml_matching.runtime import ledger
from ml_matching.runtime.ledger import LedgerSender
from tests.conftest import COPY, GB_VERSION, RF_VERSION, SEED_ROW
from tests.reliability import fleet
from tests.support import Service, request, send_queued, until

pytestmark = pytest.mark.slow


cli = fleet.experiment_cli


def predict(service: Service, key: str) -> dict[str, Any]:
    status, body = request(service.port, "POST", "/predict", SEED_ROW, headers={"ML-Unit-Key": key})
    assert status == 200, body
    return dict(body)


def start_experiment(trainer: Service, replicas: list[Service]) -> str:
    started = cli(
        trainer,
        "--json",
        "start",
        "--name",
        "gb-vs-rf",
        "--candidate",
        f"{GB_VERSION}:5000",
        "--shadow",
        COPY,
    )
    assert started.returncode == 0, started.stderr
    experiment_id = str(json.loads(started.stdout)["id"])
    for replica in replicas:
        until(lambda r=replica: request(r.port, "GET", "/experiment")[1].get("id") == experiment_id, 15)
    return experiment_id


def test_two_replicas_one_experiment_outcomes_by_prediction_id(
    trainer: Service, replicas: list[Service], models: Path
) -> None:
    experiment_id = start_experiment(trainer, replicas)
    assert read_experiment(models).salt == experiment_id  # type: ignore[union-attr]
    keys = [f"brand-{i}" for i in range(150)]
    answers = []
    for key in keys:
        a, b = predict(replicas[0], key), predict(replicas[1], key)
        assert (a["arm"], a["modelVersion"]) == (b["arm"], b["modelVersion"]), "sticky across replicas"
        answers += [a, b]
    assert {a["modelVersion"] for a in answers} == {RF_VERSION, GB_VERSION}

    def ledger_complete() -> bool:
        view = trainer.get(f"/experiments/{experiment_id}")
        return sum(a["rows"] for a in view["arms"]) == len(answers) and view["shadow"][0]["rows"] == len(
            answers
        )

    until(ledger_complete, 30)
    rng = random.Random(5)
    outcome = {a["predictionId"]: rng.random() < 0.35 for a in answers}
    items = [{"predictionId": p, "outcome": int(o)} for p, o in outcome.items()]
    rng.shuffle(items)
    status, stored = request(trainer.port, "POST", "/outcomes", {"outcomes": items})
    assert status == 200 and stored["stored"] == len(items) and stored["pending"] == 0

    view = trainer.get(f"/experiments/{experiment_id}")
    for arm in view["arms"]:
        mine = [a for a in answers if a["arm"] == arm["arm"]]
        units = {
            k
            for k, a in zip([k for k in keys for _ in range(2)], answers, strict=True)
            if a["arm"] == arm["arm"]
        }
        assert (arm["rows"], arm["scored"], arm["units"], arm["outcomes"]) == (
            len(mine),
            len(mine),
            len(units),
            len(mine),
        )
        assert arm["successes"] == sum(outcome[a["predictionId"]] for a in mine)
    assert view["shadow"] == [{"version": COPY, "rows": len(answers), "failed": 0}]
    assert view["joinRate"] == 1.0

    shown = cli(trainer, "show", experiment_id)
    assert shown.returncode == 0 and "candidate" in shown.stdout and "join rate 100.0%" in shown.stdout
    stopped = cli(trainer, "stop", experiment_id)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    for replica in replicas:
        until(lambda r=replica: request(r.port, "GET", "/experiment")[0] == 404, 15)
    assert "arm" not in predict(replicas[0], "brand-1")


def test_the_cli_words_a_refusal_and_an_unreachable_trainer(
    trainer: Service, replicas: list[Service]
) -> None:
    refused = cli(trainer, "start", "--name", "x", "--candidate", f"{GB_VERSION}:20000")
    assert (
        refused.returncode == 2 and "<= 10000" in refused.stderr and "(400 invalid_input)" in refused.stderr
    )
    env = {**os.environ, "ML_TRAINER_URL": "http://127.0.0.1:9"}
    gone = subprocess.run(
        [sys.executable, "-m", "ml_matching", "experiment", "list"], env=env, capture_output=True, text=True
    )
    assert gone.returncode == 1 and "cannot reach the trainer at http://127.0.0.1:9" in gone.stderr


def test_kill_9_of_the_trainer_loses_and_duplicates_no_ledger_row(
    trainer: Service, replicas: list[Service], tmp_path: Path
) -> None:
    experiment_id = start_experiment(trainer, replicas)
    served: list[str] = []
    stop = threading.Event()

    def traffic(replica: Service, offset: int) -> None:
        i = 0
        # Paced (about 100 a second each): rows arrive at every kill, and the runtimes leave the
        # restarting trainer a core (unpaced, this test took a core of CI for its whole 40 s).
        while not stop.wait(0.01):
            served.append(predict(replica, f"unit-{offset + i}")["predictionId"])
            i += 1

    threads = [threading.Thread(target=traffic, args=(r, 1_000_000 * k)) for k, r in enumerate(replicas)]
    for t in threads:
        t.start()
    for _ in range(3):  # kill the trainer mid-stream, three times, each time after rows arrived
        before = trainer.get(f"/experiments/{experiment_id}")
        until(lambda b=before: _rows(trainer.get(f"/experiments/{experiment_id}")) > _rows(b) + 50, 30)
        trainer.stop(signal.SIGKILL)
        until(lambda: len(served) > 0, 5)
        trainer.start()
    stop.set()
    for t in threads:
        t.join()
    until(lambda: _rows(trainer.get(f"/experiments/{experiment_id}")) == len(served), 60)
    counts = Counter(served)
    assert max(counts.values()) == 1, "each answer has its own prediction id"
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        stored = [row[0] for row in db.execute("SELECT id FROM predictions")]
    assert sorted(stored) == sorted(served), "every served row stored, exactly once"

    def ledgers() -> list[dict[str, Any]]:
        return [request(r.port, "GET", "/health")[1]["ledger"] for r in replicas]

    # The ledger processes report their counts every 50 ms: the last rows' acknowledgement follows.
    until(lambda: sum(m["queued"] for m in ledgers()) == 0, 5)
    assert sum(m["dropped"] for m in ledgers()) == 0


def _rows(view: dict[str, Any]) -> int:
    return sum(int(a["rows"]) for a in view["arms"])


def test_a_trainer_that_takes_smaller_bodies_than_a_batch_still_gets_every_row(
    models: Path, tmp_path: Path
) -> None:
    """A trainer whose MAX_BODY_BYTES is below a full ledger batch answers 413 to each; the sender
    then sends smaller batches instead of dropping rows that are not at fault."""
    from tests.trainer.conftest import trainer_service
    from tests.training.conftest import FAST_CONFIG

    config = tmp_path / "train.json"
    config.write_text(json.dumps(FAST_CONFIG))
    env = {"RETRAIN_EVERY": "0", "OUTCOMES_DB": str(tmp_path / "o.sqlite"), "MAX_BODY_BYTES": str(256 * 1024)}
    trainer = trainer_service(models, config, tmp_path, **env).start()
    ids = PredictionIds()
    rows = [LedgerRow(ids(), "2026-12-01T00:00:00.000Z", RF_VERSION, 0.5, SEED_ROW) for _ in range(1500)]
    sender = LedgerSender(f"http://127.0.0.1:{trainer.port}", 10_000, linger=0.0)
    sender.put(rows)  # about 600 bytes a row: a batch of 1,000 is over twice the trainer's limit
    try:
        send_queued(sender)
    finally:
        trainer.stop()
    assert (sender.counts.sent, sender.counts.dropped, sender.counts.refused) == (1500, 0, 0)
    assert sender.batch_rows < ledger.BATCH_ROWS
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        stored = [row[0] for row in db.execute("SELECT id FROM predictions ORDER BY id")]
    assert stored == sorted(r.prediction_id for r in rows)


def test_one_row_the_trainer_refuses_does_not_lose_the_rest_of_its_batch(trainer: Service) -> None:
    """The trainer stores all of a batch or none, so one bad row (a version it does not hold) got
    the whole batch refused; the sender then sends it row by row and drops only that row."""
    ids = PredictionIds()
    rows = [LedgerRow(ids(), "2026-12-01T00:00:00.000Z", RF_VERSION, 0.5, SEED_ROW) for _ in range(40)]
    bad = msgspec.structs.replace(rows[17], version="20990101_000000")
    rows[17] = bad
    sender = LedgerSender(f"http://127.0.0.1:{trainer.port}", 10_000, linger=0.0)
    sender.put(rows[:25])
    sender.put(rows[25:])
    try:
        sender.start()
        assert sender.wait_sent(60), sender.counts
        sender.put(rows[:3])  # after it, batches again (a resend of stored rows: stored once)
        assert sender.wait_sent(60), sender.counts
    finally:
        sender.stop(flush_seconds=0)
    assert (sender.counts.sent, sender.counts.refused, sender.counts.dropped) == (42, 1, 1)
    with sqlite3.connect(trainer.env["OUTCOMES_DB"]) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM predictions")}
    assert stored == {r.prediction_id for r in rows} - {bad.prediction_id}
