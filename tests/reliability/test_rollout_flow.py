"""Rollouts end to end, on real processes: a trainer whose controller looks every second, two runtime
replicas, traffic from the synthetic generator with outcomes arriving later, and the CLI.

- A candidate trained on the same generator goes through a short ramp (shadow, 20 %, 50 %) and is
  promoted; both replicas follow every step.
- A candidate trained on shuffled labels is rolled back; ACTIVE stays the champion.
- ``ml-matching experiment replay`` reproduces each decision; the report is one page.
- A candidate whose scoring raises (a runtime in this process, its scorer sabotaged, sending its
  ledger to the real trainer) is rolled back by the error guardrail within 60 s, with no failed answer.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from ml_matching.contract import read_active
from ml_matching.contract.experiment import read_experiment
from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from ml_matching.training.synth import synthesize
from tests.conftest import GB_VERSION, RF_VERSION, SEED_ROW
from tests.reliability import fleet
from tests.support import Service, request, until
from tests.trainer.conftest import FS, trainer_service
from tests.training.conftest import FAST_CONFIG

pytestmark = pytest.mark.slow
RAMP = "0:0:150,2000:0:300,5000:0:600"


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RandomForest fitted on shuffled outcomes (it learnt nothing), fitted once per module."""
    folder = tmp_path_factory.mktemp("shuffled")
    body = synthesize(600, FS, seed=3)
    outcomes = list(body["outcomes"])
    random.Random(4).shuffle(outcomes)
    data = folder / "shuffled.json"
    data.write_text(json.dumps({"features": body["features"], "outcomes": outcomes}))
    config = folder / "fast.json"
    config.write_text(json.dumps(FAST_CONFIG))
    fit = [
        sys.executable,
        "-m",
        "ml_matching",
        "fit",
        "--data",
        str(data),
        "--artifacts",
        str(folder / "store"),
    ]
    subprocess.run(
        [*fit, "--no-activate", "--config", str(config), "--json"], check=True, capture_output=True
    )
    (version,) = (p for p in (folder / "store").iterdir() if p.is_dir())
    return version


@pytest.fixture
def models(store: Path, shuffled: Path) -> Path:
    """The fixture store, plus the shuffled RandomForest."""
    shutil.copytree(shuffled, store / shuffled.name)
    return store


def shuffled_version(store: Path) -> str:
    return next(
        v
        for v in sorted(p.name for p in store.iterdir() if p.is_dir())
        if v not in (RF_VERSION, GB_VERSION, "20260103_000000")
    )


@pytest.fixture
def trainer(models: Path, tmp_path: Path) -> Iterator[Service]:
    config = tmp_path / "train.json"
    config.write_text(json.dumps(FAST_CONFIG))
    service = trainer_service(
        models,
        config,
        tmp_path,
        RETRAIN_EVERY="0",
        CONTROLLER_SECONDS="1",
        OUTCOMES_DB=str(tmp_path / "o.sqlite"),
    ).start()
    yield service
    service.stop()


cli = fleet.experiment_cli


def start(trainer: Service, name: str, candidate: str, ramp: str, *more: str) -> str:
    """Start an experiment with the CLI, as an operator does; its id."""
    started = cli(trainer, "--json", "start", "--name", name, "--candidate", candidate, "--ramp", ramp, *more)
    assert started.returncode == 0, started.stderr
    return str(json.loads(started.stdout)["id"])


class Backend:
    """Scores new units on alternating replicas and reports each outcome ``delay`` predictions later."""

    def __init__(self, trainer: Service, replicas: list[Service], delay: int = 40, seed: int = 9) -> None:
        self.trainer, self.replicas, self.delay = trainer, replicas, delay
        body = synthesize(20_000, FS, seed=seed)
        self.rows = list(zip(body["features"], body["outcomes"], strict=True))
        self.waiting: list[dict[str, Any]] = []
        self.served = 0
        self.failed = 0

    def step(self, n: int = 50) -> None:
        for _ in range(n):
            features, outcome = self.rows[self.served % len(self.rows)]
            replica = self.replicas[self.served % len(self.replicas)]
            status, answer = request(
                replica.port, "POST", "/predict", features, headers={"ML-Unit-Key": f"brand-{self.served}"}
            )
            self.failed += status != 200
            self.served += 1
            self.waiting.append({"predictionId": answer["predictionId"], "outcome": outcome})
        due, self.waiting = self.waiting[: -self.delay], self.waiting[-self.delay :]
        if due:
            assert request(self.trainer.port, "POST", "/outcomes", {"outcomes": due})[0] == 200


def follow_until_final(
    experiment_id: str, trainer: Service, replicas: list[Service], backend: Backend
) -> dict[str, Any]:
    """Drive traffic until the controller ends the experiment; check both replicas follow each revision."""
    deadline = time.monotonic() + 240
    seen_revisions: set[int] = set()
    while time.monotonic() < deadline:
        backend.step()
        view = trainer.get(f"/experiments/{experiment_id}")
        if view["revision"] not in seen_revisions:
            seen_revisions.add(view["revision"])
            if view["state"] != "stopped":
                for r in replicas:
                    until(lambda r=r, v=view["revision"]: _revision(r) == v, 15)
        if view["phase"] in ("promoted", "rolled_back"):
            return dict(view)
    raise AssertionError(f"the experiment did not end in time: {view['phase']} {view['primary']}")


def _revision(replica: Service) -> Any:
    return request(replica.port, "GET", "/experiment")[1].get("revision")


def test_a_candidate_of_the_same_generator_is_promoted_through_the_ramp(
    trainer: Service, replicas: list[Service], models: Path
) -> None:
    experiment_id = start(trainer, "gb", GB_VERSION, RAMP, "--primary", "logLoss:nonInferiority:0.1",
                          "--horizon-days", "1")  # fmt: skip
    backend = Backend(trainer, replicas)
    view = follow_until_final(experiment_id, trainer, replicas, backend)
    assert view["phase"] == "promoted", view["decisions"]
    kinds = [d["kind"] for d in view["decisions"]]
    # At the end of the ramp the controller holds when the interval is not yet decisive, and
    # promotes at a later look: how many outcomes had matured by then depends on the machine's pace.
    assert kinds in (
        ["created", "advance", "advance", "promote"],
        ["created", "advance", "advance", "hold", "promote"],
    )
    assert read_active(models) == GB_VERSION and backend.failed == 0
    for r in replicas:  # the replicas serve the new champion through ACTIVE
        until(lambda r=r: request(r.port, "GET", "/health")[1]["modelVersion"] == GB_VERSION, 15)
    replay = cli(trainer, "replay", experiment_id)
    assert replay.returncode == 0 and f"{len(kinds) - 1} decisions, all identical" in replay.stdout, (
        replay.stdout
    )
    report = cli(trainer, "report", experiment_id, "--out", str(models.parent / "report.html"))
    assert (
        report.returncode == 0
        and (models.parent / "report.html").read_text().count("data:image/svg+xml") == 3
    )


def test_a_candidate_trained_on_shuffled_labels_is_rolled_back(
    trainer: Service, replicas: list[Service], models: Path
) -> None:
    bad = shuffled_version(models)
    experiment_id = start(trainer, "shuffled", bad, RAMP, "--primary", "logLoss:nonInferiority:0.02")
    backend = Backend(trainer, replicas)
    view = follow_until_final(experiment_id, trainer, replicas, backend)
    assert view["phase"] == "rolled_back" and "harm" in view["decisions"][-1]["reason"], view["decisions"]
    assert read_active(models) == RF_VERSION and backend.failed == 0
    served = read_experiment(models)
    assert served is not None and (served.state, served.candidates[0].weight) == ("stopped", 0)
    assert cli(trainer, "replay", experiment_id).returncode == 0


def test_a_candidate_that_raises_is_rolled_back_within_60_s_with_no_failed_answer(
    trainer: Service, models: Path
) -> None:
    experiment_id = start(trainer, "raising", GB_VERSION, "5000:3600:100000")
    settings = Settings(
        models_dir=models, trainer_url=f"http://127.0.0.1:{trainer.port}", model_watch_seconds=0.2
    )
    with TestClient(create_app(settings)) as runtime:
        until(lambda: runtime.app.state.service.arms is not None, 15)
        (candidate,) = runtime.app.state.service.arms.candidates
        object.__setattr__(candidate, "model", _Raising())
        first_failure = time.monotonic()
        statuses = []
        rolled_back = None
        while time.monotonic() - first_failure < 90 and rolled_back is None:
            for i in range(20):
                statuses.append(
                    runtime.post(
                        "/predict", json=SEED_ROW, headers={"ML-Unit-Key": f"u-{len(statuses)}-{i}"}
                    ).status_code
                )
            view = trainer.get(f"/experiments/{experiment_id}")
            if view["phase"] == "rolled_back":
                rolled_back = time.monotonic() - first_failure
            time.sleep(0.2)
    assert rolled_back is not None and rolled_back < 60, rolled_back
    assert set(statuses) == {200}, "every answer was served (by control)"
    assert "guardrail: error rate" in view["decisions"][-1]["reason"]


class _Raising:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("the candidate's session failed")
