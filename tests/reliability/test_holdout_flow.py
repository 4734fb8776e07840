"""The long-lived holdout end to end, on real processes: a trainer, two runtime replicas, the CLI.

``ml-matching holdout start`` freezes a version for 20 % of the units; both replicas follow it and
place a unit on the same side; an experiment started beside it never sees a held unit; every keyed
row reaches the trainer's ledger with its side; outcomes posted by ``predictionId`` alone give each
side exact counts and the gain; ``holdout stop`` ends it on both replicas.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ml_matching.contract.assignment import bucket
from tests.conftest import COPY, GB_VERSION, RF_VERSION
from tests.reliability import fleet
from tests.reliability.test_experiment_flow import predict, start_experiment
from tests.support import Service, request, until

pytestmark = pytest.mark.slow


def holdout(trainer: Service, *args: str) -> Any:
    done = fleet.trainer_cli(trainer, "holdout", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_replicas_one_holdout_beside_an_experiment(trainer: Service, replicas: list[Service]) -> None:
    started = json.loads(holdout(trainer, "--json", "start", "--weight", "2000", "--version", COPY))
    holdout_id, salt = started["id"], started["salt"]
    for replica in replicas:
        until(lambda r=replica: request(r.port, "GET", "/holdout")[1].get("id") == holdout_id, 15)
    experiment_id = start_experiment(trainer, replicas)

    keys = [f"brand-{i}" for i in range(150)]
    held = {k for k in keys if bucket(salt, k) < 2000}
    answers: list[tuple[str, dict[str, Any]]] = []
    for key in keys:
        a, b = predict(replicas[0], key), predict(replicas[1], key)
        assert a.get("arm") == b.get("arm") and a["modelVersion"] == b["modelVersion"], "sticky"
        if key in held:
            assert a["modelVersion"] == COPY and "experiment" not in a, (
                "a held unit is outside the experiment"
            )
        else:
            assert a["experiment"] == experiment_id and a["modelVersion"] in (RF_VERSION, GB_VERSION)
        answers += [(key, a), (key, b)]
    assert 0 < len(held) < len(keys)

    def sides() -> dict[str, Any]:
        return {s["side"]: s for s in trainer.get(f"/holdouts/{holdout_id}")["sides"]}

    until(lambda: sum(s["rows"] for s in sides().values()) == len(answers), 30)
    rng = random.Random(11)
    outcome = {a["predictionId"]: rng.random() < 0.35 for _, a in answers}
    items = [{"predictionId": p, "outcome": int(o)} for p, o in outcome.items()]
    status, stored = request(trainer.port, "POST", "/outcomes", {"outcomes": items})
    assert status == 200 and stored["stored"] == len(items) and stored["pending"] == 0

    got = sides()
    for side, mine in (
        ("holdout", [a for k, a in answers if k in held]),
        ("live", [a for k, a in answers if k not in held]),
    ):
        assert (got[side]["rows"], got[side]["outcomes"], got[side]["matured"]) == (
            len(mine),
            len(mine),
            len(mine),
        )
        successes = sum(outcome[a["predictionId"]] for a in mine)
        assert got[side]["metrics"]["successRate"] == pytest.approx(successes / len(mine))
    experiment = trainer.get(f"/experiments/{experiment_id}")
    assert sum(a["rows"] for a in experiment["arms"]) == 2 * (len(keys) - len(held))

    shown = holdout(trainer, "show", holdout_id)
    assert "live - holdout, logLoss" in shown and "anytime-valid" in shown
    assert "stopped" in holdout(trainer, "stop", holdout_id)
    for replica in replicas:
        until(lambda r=replica: request(r.port, "GET", "/holdout")[0] == 404, 15)
    key = next(iter(held))
    assert predict(replicas[0], key)["experiment"] == experiment_id, "an ended holdout's units rejoin"


def test_the_cli_words_a_refusal(trainer: Service) -> None:
    refused = fleet.trainer_cli(trainer, "holdout", "start", "--weight", "5000")
    assert refused.returncode == 2 and "<= 2000" in refused.stderr and "(400 invalid_input)" in refused.stderr
