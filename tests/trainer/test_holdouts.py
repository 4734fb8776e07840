"""The long-lived holdout on the trainer: the checks when one starts, the store's ``HOLDOUT`` every
runtime follows, its end, and what it measures (live minus holdout), checked against scikit-learn."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sklearn.metrics import brier_score_loss, log_loss

from ml_matching.contract.assignment import BUCKETS, HASH_VERSION
from ml_matching.contract.holdout import HOLDOUT, LIVE, Holdout, read_holdout, write_holdout
from ml_matching.contract.ids import PredictionIds
from ml_matching.contract.ledger import LedgerRow
from ml_matching.trainer import TrainerSettings, create_app
from ml_matching.trainer.sequential import split_cs
from tests.conftest import GB_VERSION, OTHER_VERSION, RF_VERSION, SEED_ROW
from tests.trainer.conftest import ADMIN
from tests.trainer.test_experiments import _error, _post_rows, _start

Client = TestClient[Litestar]
ids = PredictionIds()


def _settings(models: Path, tmp_path: Path) -> TrainerSettings:
    return TrainerSettings(
        models_dir=models, admin_token="trainer-token", outcomes_db=str(tmp_path / "o.sqlite")
    )


@pytest.fixture
def client(models: Path, tmp_path: Path) -> Iterator[Client]:
    with TestClient(create_app(_settings(models, tmp_path))) as c:
        yield c


def _hold(client: Client, **body: Any) -> Any:
    return client.post("/holdouts", json={"weight": 500, **body}, headers=ADMIN)


def test_a_holdout_freezes_active_by_default_and_is_published(client: Client, models: Path) -> None:
    answer = _hold(client, horizonDays=14)
    assert answer.status_code == 201, answer.text
    view = answer.json()
    assert answer.headers["location"] == f"/holdouts/{view['id']}", "201: the URL of what was created"
    assert (view["state"], view["version"], view["weight"], view["horizonDays"]) == (
        "running",
        RF_VERSION,
        500,
        14,
    )
    assert [s["side"] for s in view["sides"]] == [HOLDOUT, LIVE]
    on_file = read_holdout(models)
    assert on_file is not None and (on_file.id, on_file.salt, on_file.hash) == (
        view["id"],
        view["id"],
        HASH_VERSION,
    )
    assert [r["holdout"]["id"] for r in client.get("/holdouts").json()] == [view["id"]]


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"weight": 0}, 400, "invalid_input", ">= 1"),
        ({"weight": 2_001}, 400, "invalid_input", "<= 2000"),
        ({"version": "20990101_000000"}, 404, "version_not_found", "20990101_000000"),
        ({"version": OTHER_VERSION}, 400, "invalid_input", "scores other features than ACTIVE"),
        ({"horizonDays": 0}, 400, "invalid_input", "horizonDays"),
        ({"share": 5}, 400, "invalid_input", "share"),
    ],
)  # fmt: skip
def test_refusals_name_what_is_wrong(
    client: Client, models: Path, body: dict[str, Any], status: int, code: str, words: str
) -> None:
    assert words in _error(_hold(client, **body), status, code)
    assert client.get("/holdouts").json() == [] and read_holdout(models) is None, "nothing was kept"


def test_the_admin_token_is_required(client: Client) -> None:
    assert client.post("/holdouts", json={"weight": 500}).status_code == 401


def test_one_holdout_at_a_time_and_its_end(client: Client, models: Path) -> None:
    first = _hold(client, version=GB_VERSION).json()
    assert "stop it before starting another" in _error(_hold(client), 409, "experiment_conflict")
    assert client.post(f"/holdouts/{first['id']}/stop").status_code == 401
    stopped = client.post(f"/holdouts/{first['id']}/stop", headers=ADMIN).json()
    assert stopped["state"] == "stopped" and stopped["endedAt"] and read_holdout(models) is None
    assert "ended at" in _error(
        client.post(f"/holdouts/{first['id']}/stop", headers=ADMIN), 409, "experiment_conflict"
    )
    assert client.get(f"/holdouts/{first['id']}").json()["state"] == "stopped", "its figures stay readable"
    assert _hold(client).status_code == 201, "a new holdout may start once the last one ended"
    assert "GET /holdouts lists them" in _error(
        client.get("/holdouts/holdout-nope"), 404, "holdout_not_found"
    )
    _error(client.post("/holdouts/holdout-nope/stop", headers=ADMIN), 404, "holdout_not_found")


def test_holdout_and_experiment_are_independent(client: Client) -> None:
    assert _hold(client).status_code == 201
    assert _start(client).status_code == 201, "an experiment runs beside the holdout"


@pytest.mark.parametrize("arm", [HOLDOUT, LIVE])
def test_an_experiment_arm_may_not_take_a_holdout_side_name(client: Client, arm: str) -> None:
    body = {"candidates": [{"version": GB_VERSION, "weight": 10, "arm": arm}]}
    assert "arm names" in _error(_start(client, **body), 400, "invalid_input")


def test_the_store_file_is_rewritten_from_the_database_at_start(models: Path, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(models, tmp_path))) as c:
        view = _hold(c).json()
    write_holdout(models, None)  # a trainer killed between the file and the commit, or a hand
    with TestClient(create_app(_settings(models, tmp_path))):
        on_file = read_holdout(models)
    assert on_file is not None and on_file.id == view["id"]


# --- what it measures --------------------------------------------------------------------------


def _row(h: Holdout, side: str, p: float, at: str, **changes: Any) -> LedgerRow:
    version, weight = (h.version, h.weight) if side == HOLDOUT else (RF_VERSION, BUCKETS - h.weight)
    fields = {
        "prediction_id": ids(), "at": at, "version": version, "probability": p, "features": dict(SEED_ROW),
        "arm": side, "weight": weight, "unit": "ab" * 32, "hash": HASH_VERSION, "holdout": h.id, **changes,
    }  # fmt: skip
    return LedgerRow(**fields)


def test_the_gain_is_live_minus_holdout_over_matured_outcomes(client: Client, models: Path) -> None:
    """Metrics per side against scikit-learn, the gain against the sides' own losses; a prediction past
    its horizon without an outcome counts as a failure; a row live served for a held unit is on neither
    side, one an experiment's control served for a live unit is live's."""
    assert _hold(client, version=GB_VERSION, horizonDays=1).status_code == 201
    h = read_holdout(models)
    assert h is not None
    rng = np.random.default_rng(7)
    now = dt.datetime.now(dt.UTC)
    recent = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    old = (now - dt.timedelta(days=2)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    sides: dict[str, tuple[list[float], list[int]]] = {HOLDOUT: ([], []), LIVE: ([], [])}
    rows, outcomes = [], []
    for side, n, lift in ((HOLDOUT, 120, 0.0), (LIVE, 400, 0.15)):
        truth = rng.uniform(0.1, 0.9, n)
        y = (rng.uniform(size=n) < truth).astype(int)
        p = np.clip(truth + rng.normal(0, 0.25 - lift, n), 0.05, 0.95)
        for i in range(n):
            row = _row(h, side, float(p[i]), recent)
            rows.append(row)
            outcomes.append({"predictionId": row.prediction_id, "outcome": int(y[i])})
            sides[side][0].append(float(p[i]))
            sides[side][1].append(int(y[i]))
    expired = _row(h, HOLDOUT, 0.7, old)  # no outcome, past its 1-day horizon: not a success
    sides[HOLDOUT][0].append(0.7)
    sides[HOLDOUT][1].append(0)
    waiting = _row(h, LIVE, 0.4, recent)  # no outcome yet, within its horizon: not matured
    fell = _row(h, HOLDOUT, 0.2, recent, version=RF_VERSION, fallback=True, error="raised")
    outcomes.append({"predictionId": fell.prediction_id, "outcome": 1})
    # A live unit in an experiment whose candidate raised: control served it, and it is live's.
    stood_in = _row(h, LIVE, 0.3, recent, experiment="exp-x", revision=1, arm="candidate", fallback=True)
    outcomes.append({"predictionId": stood_in.prediction_id, "outcome": 1})
    sides[LIVE][0].append(0.3)
    sides[LIVE][1].append(1)
    elsewhere = _row(h, LIVE, 0.9, recent, holdout="holdout-other")
    assert _post_rows(client, [*rows, expired, waiting, fell, stood_in, elsewhere]).status_code == 200
    assert client.post("/outcomes", json={"outcomes": outcomes}).status_code == 200

    view = client.get(f"/holdouts/{h.id}").json()
    got = {s["side"]: s for s in view["sides"]}
    assert (got[HOLDOUT]["rows"], got[HOLDOUT]["fallback"], got[HOLDOUT]["matured"]) == (122, 1, 121)
    assert (got[LIVE]["rows"], got[LIVE]["outcomes"], got[LIVE]["matured"]) == (402, 401, 401)
    losses = {}
    for side, (p, y) in sides.items():
        m = got[side]["metrics"]
        assert m["logLoss"] == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=1e-9)
        assert m["brier"] == pytest.approx(brier_score_loss(y, p), rel=1e-9)
        assert m["successRate"] == pytest.approx(np.mean(y), rel=1e-12)
        pa, ya = np.array(p), np.array(y)
        losses[side] = -(ya * np.log(pa) + (1 - ya) * np.log(1 - pa))
    gain = {g["metric"]: g for g in view["gain"]}
    expected = split_cs(losses[HOLDOUT], losses[LIVE], 0.05)
    assert gain["logLoss"]["cs"]["estimate"] == pytest.approx(losses[LIVE].mean() - losses[HOLDOUT].mean())
    assert gain["logLoss"]["cs"]["lower"] == pytest.approx(expected.lower)
    assert gain["logLoss"]["cs"]["upper"] == pytest.approx(expected.upper)
    assert gain["logLoss"]["lowerIsBetter"] and not gain["successRate"]["lowerIsBetter"]
    assert gain["logLoss"]["cs"]["estimate"] < 0, "the sharper live model has the lower loss"
