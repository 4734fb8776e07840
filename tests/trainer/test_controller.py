"""The controller on the trainer's real store: ramps advance, good candidates are promoted, harmful
ones rolled back (by the primary metric, by a guardrail, by hand), inconclusive ones held; every
decision is logged and replays identically.

The ledger rows and outcomes are made as the runtimes and the backend make them: each unit's arm is
the experiment's assignment read from the store's EXPERIMENT; outcomes come from a known success
probability; control's model is calibrated on it, the candidate is too (``good``) or scores with
its probabilities shuffled (``shuffled``, a model that learnt nothing).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract import read_active
from ml_matching.contract.assignment import HASH_VERSION, unit_digest
from ml_matching.contract.experiment import now, read_experiment
from ml_matching.contract.ids import PredictionIds
from ml_matching.contract.ledger import LedgerRow, ShadowScore
from ml_matching.trainer import TrainerSettings, create_app
from tests.conftest import GB_VERSION, RF_VERSION, SEED_ROW
from tests.prometheus import parse, value
from tests.trainer.conftest import ADMIN, full_disk_at_commit

Client = TestClient[Litestar]
ids = PredictionIds()


@pytest.fixture
def client(store: Path, tmp_path: Path) -> Iterator[Client]:
    settings = TrainerSettings(
        models_dir=store,
        admin_token="trainer-token",
        outcomes_db=str(tmp_path / "o.sqlite"),
        controller_seconds=0,
        retrain_every=0,  # the controller alone: no training jobs in these tests
    )
    with TestClient(create_app(settings)) as c:
        yield c


class Traffic:
    """Units scored under the store's experiment, and their outcomes, sent to the trainer."""

    def __init__(self, client: Client, store: Path, candidate: str, seed: int = 0) -> None:
        self.client, self.store, self.candidate = client, store, candidate
        self.rng = random.Random(seed)
        self.next_unit = 0

    def serve(self, n: int, errors: float = 0.0, ms: float = 1.0) -> None:
        """``n`` predictions of new units, then their outcomes (all matured at once)."""
        experiment = read_experiment(self.store)
        assert experiment is not None
        rows, outcomes = [], []
        for _ in range(n):
            key = f"unit-{self.next_unit}"
            self.next_unit += 1
            arm, version, weight = experiment.assign(key)
            truth = self.rng.uniform(0.05, 0.95)
            good = min(max(truth + self.rng.gauss(0, 0.03), 0.01), 0.99)
            shadow_p = self._candidate_p(truth)
            failed = arm != "control" and self.rng.random() < errors
            served = shadow_p if arm != "control" and not failed else good
            shadow = tuple(ShadowScore(v, shadow_p) for v in experiment.shadow)
            row = LedgerRow(
                ids(), now(), RF_VERSION if failed else version, served, dict(SEED_ROW), experiment.id,
                experiment.revision, arm, weight, unit_digest(experiment.salt, key).hex(), HASH_VERSION,
                fallback=failed, error="raised RuntimeError" if failed else None, ms=ms, shadow=shadow,
            )  # fmt: skip
            rows.append(row)
            outcomes.append({"predictionId": row.prediction_id, "outcome": self.rng.random() < truth})
        body = msgspec.json.encode({"rows": rows})
        assert (
            self.client.post(
                "/predictions", content=body, headers={"Content-Type": "application/json"}
            ).status_code
            == 200
        )
        assert self.client.post("/outcomes", json={"outcomes": outcomes}).status_code == 200

    def _candidate_p(self, truth: float) -> float:
        if self.candidate == "good":
            return min(max(truth + self.rng.gauss(0, 0.03), 0.01), 0.99)
        return self.rng.uniform(0.05, 0.95)  # shuffled: unrelated to the truth


def _start(client: Client, ramp: list[dict[str, Any]], **body: Any) -> str:
    answer = client.post(
        "/experiments",
        # A fixed salt: the id, a random token, would salt the assignment, and which units fall in which
        # arm would change from run to run, and with it every statistic (CI once saw a hold here).
        json={
            "name": "ramp",
            "candidates": [{"version": GB_VERSION}],
            "ramp": ramp,
            "salt": "controller",
            **body,
        },
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _tick(client: Client) -> list[str]:
    return list(client.app.state.trainer.rollouts.tick())


def _view(client: Client, experiment_id: str) -> dict[str, Any]:
    return dict(client.get(f"/experiments/{experiment_id}").json())


def test_a_good_candidate_goes_from_shadow_through_the_ramp_to_promotion(client: Client, store: Path) -> None:
    ramp = [
        {"weight": 0, "minOutcomes": 300},
        {"weight": 1000, "minOutcomes": 300},
        {"weight": 5000, "minOutcomes": 600},
    ]
    experiment_id = _start(client, ramp, primary={"metric": "logLoss", "margin": 0.1})
    traffic = Traffic(client, store, "good")
    assert read_experiment(store).shadow == (GB_VERSION,)  # type: ignore[union-attr]
    traffic.serve(200)
    assert _tick(client) == [], "too few outcomes for the shadow step"
    traffic.serve(200)
    assert _tick(client) == [f"{experiment_id}: advance"]
    served = read_experiment(store)
    assert served is not None and served.candidates[0].weight == 1000 and served.shadow == ()
    traffic.serve(3000)
    assert _tick(client) == [f"{experiment_id}: advance"]
    assert read_experiment(store).candidates[0].weight == 5000  # type: ignore[union-attr]
    traffic.serve(2000)
    assert _tick(client) == [f"{experiment_id}: promote"]
    view = _view(client, experiment_id)
    assert (view["phase"], view["state"]) == ("promoted", "stopped")
    assert read_active(store) == GB_VERSION, "ACTIVE is the candidate"
    kinds = [(d["kind"], d["by"]) for d in view["decisions"]]
    assert kinds == [
        ("created", "api"),
        ("advance", "controller"),
        ("advance", "controller"),
        ("promote", "controller"),
    ]
    assert view["decisions"][1]["details"]["look"]["test"] == "paired"
    replayed = client.get(f"/experiments/{experiment_id}/replay").json()
    assert [r["kind"] for r in replayed] == ["advance", "advance", "promote"] and all(
        r["identical"] for r in replayed
    )


def test_a_shuffled_candidate_is_rolled_back(client: Client, store: Path) -> None:
    experiment_id = _start(
        client, [{"weight": 5000, "minOutcomes": 100_000}], primary={"metric": "logLoss", "margin": 0.02}
    )
    traffic = Traffic(client, store, "shuffled")
    decided: list[str] = []
    while not decided and traffic.next_unit < 5000:
        traffic.serve(250)
        decided = _tick(client)
    assert decided == [f"{experiment_id}: rollback"]
    view = _view(client, experiment_id)
    assert view["phase"] == "rolled_back" and "harm" in view["decisions"][-1]["reason"]
    served = read_experiment(store)
    assert served is not None and (served.state, served.candidates[0].weight) == ("stopped", 0)
    assert read_active(store) == RF_VERSION, "ACTIVE stays the champion"
    assert all(r["identical"] for r in client.get(f"/experiments/{experiment_id}/replay").json())


def test_a_promotion_whose_commit_fails_leaves_active_and_the_experiment_as_they_were(
    client: Client, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACTIVE, like EXPERIMENT, is written inside the promotion's transaction: a full disk at its
    commit rolls the database back and must put both files back, or retraining and every keyless
    request would move to a candidate the database never promoted."""
    experiment_id = _start(client, [{"weight": 1000}, {"weight": 5000}])
    before = read_experiment(store)
    commits = full_disk_at_commit(monkeypatch)
    assert client.post(f"/experiments/{experiment_id}/promote", headers=ADMIN).status_code == 507
    commits()
    assert read_active(store) == RF_VERSION
    assert read_experiment(store) == before
    assert _view(client, experiment_id)["phase"] == "ramp"
    assert client.post(f"/experiments/{experiment_id}/promote", headers=ADMIN).status_code == 200
    assert read_active(store) == GB_VERSION


def test_a_failing_candidate_is_rolled_back_by_the_error_guardrail(client: Client, store: Path) -> None:
    experiment_id = _start(client, [{"weight": 5000, "minOutcomes": 100_000}], guardrails={"errorRate": 0.01})
    Traffic(client, store, "good").serve(200, errors=0.5)
    assert _tick(client) == [f"{experiment_id}: rollback"]
    assert "guardrail: error rate" in _view(client, experiment_id)["decisions"][-1]["reason"]


def test_a_slow_candidate_is_rolled_back_by_the_latency_guardrail(client: Client, store: Path) -> None:
    experiment_id = _start(client, [{"weight": 5000, "minOutcomes": 100_000}], guardrails={"p99Ms": 50})
    Traffic(client, store, "good").serve(200, ms=55.0)
    assert _tick(client) == [f"{experiment_id}: rollback"]
    assert "guardrail: p99 55.0 ms > 50 ms" in _view(client, experiment_id)["decisions"][-1]["reason"]


def test_an_inconclusive_end_holds_and_a_person_can_decide(client: Client, store: Path) -> None:
    experiment_id = _start(client, [{"weight": 5000, "minOutcomes": 40}], primary={"margin": 0.001})
    Traffic(client, store, "good").serve(60)
    assert _tick(client) == [f"{experiment_id}: hold"], "too few outcomes to show non-inferiority by 0.001"
    assert _view(client, experiment_id)["phase"] == "held"
    assert _tick(client) == [], "a hold is logged once"
    answer = client.post(f"/experiments/{experiment_id}/rollback", headers=ADMIN)
    assert answer.status_code == 200 and answer.json()["phase"] == "rolled_back"
    last = answer.json()["decisions"][-1]
    assert (last["kind"], last["by"]) == ("rollback", "api")
    assert client.post(f"/experiments/{experiment_id}/promote", headers=ADMIN).status_code == 409


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"ramp": [{"weight": 5000}, {"weight": 1000}]}, "must not go down"),
        ({"ramp": [{"weight": 0}]}, "last ramp step must serve"),
        ({"ramp": []}, "at least one step"),
        ({"primary": {"metric": "logLoss"}}, "go with a `ramp`"),
        (
            {"ramp": [{"weight": 500}], "candidates": [{"version": GB_VERSION, "weight": 900}]},
            "comes from the ramp",
        ),
    ],
)
def test_bad_plans_are_refused(client: Client, body: dict[str, Any], words: str) -> None:
    full = {"name": "x", "candidates": [{"version": GB_VERSION}], **body}
    answer = client.post("/experiments", json=full, headers=ADMIN)
    assert answer.status_code == 400 and words in answer.json()["detail"], answer.text


def test_manual_actions_need_a_ramp(client: Client) -> None:
    answer = client.post(
        "/experiments",
        json={"name": "x", "candidates": [{"version": GB_VERSION, "weight": 500}]},
        headers=ADMIN,
    )
    experiment_id = answer.json()["id"]
    refused = client.post(f"/experiments/{experiment_id}/advance", headers=ADMIN)
    assert refused.status_code == 409 and "has no ramp" in refused.json()["detail"]


def test_the_report_is_one_page_with_its_figures_inline(client: Client, store: Path) -> None:
    experiment_id = _start(client, [{"weight": 0, "minOutcomes": 200}, {"weight": 5000, "minOutcomes": 400}])
    traffic = Traffic(client, store, "good")
    traffic.serve(300)
    _tick(client)
    traffic.serve(300)
    _tick(client)
    page = client.get(f"/experiments/{experiment_id}/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # The trainer is a long-lived process: a report's figures are not left open (pyplot keeps every
    # figure it made until closed, so each report would have grown the process by three).
    from matplotlib._pylab_helpers import Gcf

    assert Gcf.get_num_fig_managers() == 0
    text = page.text
    assert text.count("data:image/svg+xml;base64,") == 3 and "http://" not in text and "https://" not in text
    for words in (
        "Assignments per arm",
        "The primary metric",
        "Candidate weight over time",
        "Decision log",
        "advance",
        "logLoss",
        "SRM p",
    ):
        assert words in text, words
    metrics = parse(client.get("/metrics").text)
    view = _view(client, experiment_id)
    rows = {a["arm"]: a["rows"] for a in view["arms"]}
    assert value(metrics, "ml_matching_trainer_experiment_rows", arm="candidate") == rows["candidate"]
    assert value(metrics, "ml_matching_trainer_experiment_info", experiment=experiment_id, phase="ramp") == 1
    assert value(metrics, "ml_matching_trainer_experiment_primary_estimate") == pytest.approx(
        view["primary"]["estimate"]
    )


def test_with_promotion_experiment_a_retrained_version_enters_an_experiment(
    trainer_store: Path, fast_config_file: Path, tmp_path: Path
) -> None:
    from tests.trainer.conftest import outcomes

    settings = TrainerSettings(
        models_dir=trainer_store, admin_token="trainer-token", train_config=fast_config_file,
        outcomes_db=str(tmp_path / "o.sqlite"), promotion="experiment", promotion_tolerance=1.0,
        controller_seconds=0, max_batch_rows=300,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        trainer = client.app.state.trainer
        first = client.post("/outcomes", json={"outcomes": outcomes(60, seed=11)}).json()["job"]
        trainer.runner.wait(first, 120)
        champion = read_active(trainer_store)
        assert champion is not None, "the store's first version is ACTIVE at once: nothing to test it against"
        second = client.post("/outcomes", json={"outcomes": outcomes(60, seed=12)}).json()["job"]
        trainer.runner.wait(second, 120)
        assert read_active(trainer_store) == champion, "the gate's pass does not change ACTIVE"
        (experiment,) = client.get("/experiments").json()
        candidate = client.get(f"/train/{second}").json()["result"]["modelVersion"]
        assert experiment["control"] == champion and experiment["candidates"][0]["version"] == candidate
        view = _view(client, experiment["id"])
        assert view["phase"] == "shadow" and view["decisions"][0]["by"] == "trainer"
        assert [s.weight for s in view_plan(view)] == [0, 1000, 5000]


def view_plan(view: dict[str, Any]) -> list[Any]:
    from ml_matching.trainer.plan import RampStep

    return [msgspec.convert(step, RampStep) for step in view["plan"]["ramp"]]


def test_advancing_by_hand_ends_a_hold_by_hand(client: Client) -> None:
    """Left in force, a hold by hand that was advanced past kept the controller from ever promoting
    after its own hold at the end of the ramp."""
    experiment_id = _start(client, [{"weight": 1000}, {"weight": 5000}])
    held = client.post(f"/experiments/{experiment_id}/hold", headers=ADMIN)
    assert held.status_code == 200 and held.json()["phase"] == "held"
    advanced = client.post(f"/experiments/{experiment_id}/advance", headers=ADMIN)
    assert advanced.status_code == 200 and advanced.json()["phase"] == "ramp"
    released = client.post(f"/experiments/{experiment_id}/release", headers=ADMIN)
    assert released.status_code == 409 and "not held by hand" in released.json()["detail"]


def test_an_advance_that_names_the_step_it_saw_is_never_applied_twice(client: Client) -> None:
    """Its answer lost (a timeout), a retried advance would skip a step; with the step it saw, the
    retry is refused instead."""
    experiment_id = _start(client, [{"weight": 1000}, {"weight": 2000}, {"weight": 5000}])
    first = client.post(f"/experiments/{experiment_id}/advance?step=0", headers=ADMIN)
    assert first.status_code == 200 and first.json()["step"] == 1
    again = client.post(f"/experiments/{experiment_id}/advance?step=0", headers=ADMIN)
    assert again.status_code == 409 and "is at ramp step 1, not 0" in again.json()["detail"]
    assert client.get(f"/experiments/{experiment_id}").json()["step"] == 1
