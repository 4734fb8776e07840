"""A runtime under the long-lived holdout: held units served by the frozen version and kept out of
experiments, live units recorded as such, the ledger rows of both, refusals and fallbacks."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract.assignment import BUCKETS, HASH_VERSION, bucket, unit_digest
from ml_matching.contract.experiment import Candidate, write_experiment
from ml_matching.contract.holdout import HOLDOUT, LIVE, Holdout, read_holdout, write_holdout
from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from tests.conftest import COPY, GB_VERSION, OTHER_VERSION, RF_VERSION, SEED_ROW
from tests.runtime.test_experiments import Captured, _FailingSession, _Raising, experiment
from tests.runtime.test_v2 import FEATURE_NAMES, INFER, tensor

Client = TestClient[Litestar]
KEYS = [f"brand-{i}" for i in range(300)]
WEIGHT = 2_000  # 20 %: enough held units among 300 keys for every case


def holdout(**changes: Any) -> Holdout:
    base = {
        "id": "holdout-test", "version": GB_VERSION, "weight": WEIGHT, "salt": "holdout-salt",
        "horizon_days": 30.0, "created_at": "2026-11-30T12:00:00.000Z",
    }  # fmt: skip
    return Holdout(**{**base, **changes})


def held(key: str, h: Holdout | None = None) -> bool:
    h = h or holdout()
    return bucket(h.salt, key) < h.weight


def _client(models: Path, h: Holdout | None, **settings: Any) -> Client:
    if h is not None:
        write_holdout(models, h)
    return TestClient(create_app(Settings(models_dir=models, **settings)))


@pytest.fixture
def client(models: Path) -> Iterator[Client]:
    with _client(models, holdout()) as c:
        yield c


def _predict(client: Client, key: str | None) -> dict[str, Any]:
    headers = {} if key is None else {"ML-Unit-Key": urllib.parse.quote(key, safe="")}
    response = client.post("/predict", json=SEED_ROW, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_held_units_are_served_by_the_frozen_version_and_nobody_else(client: Client) -> None:
    served = {key: _predict(client, key)["modelVersion"] for key in KEYS}
    assert {k for k, v in served.items() if v == GB_VERSION} == {k for k in KEYS if held(k)}
    assert {k for k, v in served.items() if v == RF_VERSION} == {k for k in KEYS if not held(k)}
    assert 0 < sum(map(held, KEYS)) < len(KEYS)


def test_answers_do_not_tell_a_unit_it_is_held_out(client: Client) -> None:
    for key in KEYS[:40]:
        answer = _predict(client, key)
        assert "experiment" not in answer and "arm" not in answer and answer["predictionId"]


def test_ledger_rows_say_which_side_each_unit_is_on(client: Client) -> None:
    captured = Captured(client)
    answers = {key: _predict(client, key) for key in KEYS}
    rows = {r.prediction_id: r for r in captured.settled()}
    assert len(rows) == len(KEYS), "under a holdout every keyed prediction is recorded"
    h = holdout()
    for key, answer in answers.items():
        row = rows[answer["predictionId"]]
        side, version, weight = (
            (HOLDOUT, GB_VERSION, WEIGHT) if held(key) else (LIVE, RF_VERSION, BUCKETS - WEIGHT)
        )
        assert (row.holdout, row.arm, row.version, row.weight) == (h.id, side, version, weight)
        assert row.experiment is None and row.revision is None and not row.fallback
        assert (row.unit, row.hash) == (unit_digest(h.salt, key).hex(), HASH_VERSION)
        assert row.probability == pytest.approx(answer["successProbability"] / 100, abs=1e-6)


def test_a_request_without_a_key_is_outside_the_holdout(client: Client) -> None:
    captured = Captured(client)
    assert _predict(client, None)["modelVersion"] == RF_VERSION
    assert captured.settled() == [], "LEDGER=experiments records keyed rows only"


def test_keyed_rows_scored_together_with_a_keyless_one_are_recorded(client: Client) -> None:
    """Requests of one loop turn are scored together by version: a request without a key (outside
    the holdout, not recorded) in the same group as live units' must not keep their rows out."""
    captured = Captured(client)
    serving = client.app.state.serving
    live = [k for k in KEYS if not held(k)][:3]
    body = msgspec.json.encode(SEED_ROW)

    async def one_turn() -> list[bytes]:
        keys = [None, *live]  # the keyless request first: its route led the group
        return list(await asyncio.gather(*(serving.predict(body, k, False) for k in keys)))

    answers = [msgspec.json.decode(a) for a in client.blocking_portal.call(one_turn)]
    recorded = {r.prediction_id: r.arm for r in captured.settled()}
    assert recorded == {a["predictionId"]: LIVE for a in answers[1:]}


def test_held_units_never_enter_the_experiment_and_live_rows_name_both(models: Path) -> None:
    write_experiment(models, experiment(candidates=(Candidate("candidate", COPY, 5_000),)))
    with _client(models, holdout()) as client:
        captured = Captured(client)
        answers = {key: _predict(client, key) for key in KEYS}
        rows = {r.prediction_id: r for r in captured.settled()}
    exp = experiment(candidates=(Candidate("candidate", COPY, 5_000),))
    for key, answer in answers.items():
        row = rows[answer["predictionId"]]
        assert row.holdout == "holdout-test"
        if held(key):
            assert "experiment" not in answer and (row.arm, row.experiment, row.version) == (
                HOLDOUT,
                None,
                GB_VERSION,
            )
        else:
            arm, version, _ = exp.assign(key)
            assert (answer["experiment"], answer["arm"], answer["modelVersion"]) == ("exp-test", arm, version)
            assert (row.experiment, row.arm, row.unit) == ("exp-test", arm, unit_digest(exp.salt, key).hex())


def test_a_batch_places_each_row_by_its_unit(client: Client) -> None:
    captured = Captured(client)
    answer = client.post("/predict/batch", json={"instances": [SEED_ROW] * len(KEYS), "units": KEYS}).json()
    versions = [p["modelVersion"] for p in answer["predictions"]]
    assert versions == [GB_VERSION if held(k) else RF_VERSION for k in KEYS]
    arms = {r.prediction_id: r.arm for r in captured.settled()}
    assert [arms[p["predictionId"]] for p in answer["predictions"]] == [
        HOLDOUT if held(k) else LIVE for k in KEYS
    ]


def test_an_open_inference_request_with_a_unit_is_placed_too(client: Client) -> None:
    key = next(k for k in KEYS if held(k))
    request = {**tensor([SEED_ROW[f] for f in FEATURE_NAMES]), "parameters": {"unit": key}}
    captured = Captured(client)
    response = client.post(INFER, json=request)
    assert response.status_code == 200, response.text
    (row,) = captured.settled()
    assert (row.arm, row.version, row.holdout) == (HOLDOUT, GB_VERSION, "holdout-test")


def test_a_frozen_version_that_raises_never_fails_an_answer(client: Client) -> None:
    captured = Captured(client)
    frozen = client.app.state.service.held.scorer
    object.__setattr__(frozen, "model", _Raising())
    keys = [k for k in KEYS if held(k)][:10]
    assert {_predict(client, k)["modelVersion"] for k in keys} == {RF_VERSION}
    rows = captured.settled()
    assert len(rows) == 10 and all(r.fallback and r.arm == HOLDOUT for r in rows)
    assert all(f"{GB_VERSION} raised RuntimeError" in (r.error or "") for r in rows)


def test_an_open_inference_request_falls_back_to_control_when_the_frozen_version_raises(
    client: Client,
) -> None:
    """As /predict does: before, OIP answered 500 and recorded nothing, out of the guardrail's sight."""
    captured = Captured(client)
    frozen = client.app.state.service.held.scorer
    object.__setattr__(frozen, "model", _FailingSession(frozen.model))
    key = next(k for k in KEYS if held(k))
    request = {**tensor([SEED_ROW[f] for f in FEATURE_NAMES]), "parameters": {"unit": key}}
    response = client.post(INFER, json=request)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == RF_VERSION
    (row,) = captured.settled()
    assert (row.arm, row.version, row.fallback) == (HOLDOUT, RF_VERSION, True)
    assert f"{GB_VERSION} raised RuntimeError" in (row.error or "")


def test_health_and_get_holdout_show_what_is_followed(client: Client) -> None:
    health = client.get("/health").json()
    assert health["holdout"] == {"id": "holdout-test", "version": GB_VERSION, "weight": WEIGHT}
    assert client.get("/holdout").json() == {
        "id": "holdout-test", "version": GB_VERSION, "weight": WEIGHT, "salt": "holdout-salt",
        "horizonDays": 30.0, "createdAt": "2026-11-30T12:00:00.000Z", "hash": HASH_VERSION,
    }  # fmt: skip


def test_a_version_of_other_features_is_refused_and_units_are_served_live(models: Path) -> None:
    with _client(models, holdout(version=OTHER_VERSION)) as client:
        health = client.get("/health").json()
        assert "holdout" not in health and "other features" in health["holdoutRefused"]
        answer = client.get("/holdout")
        assert answer.status_code == 404 and answer.json()["error"] == "holdout_not_found"
        assert {_predict(client, k)["modelVersion"] for k in KEYS[:50]} == {RF_VERSION}


def test_an_ended_holdout_is_dropped_at_the_next_look(client: Client, models: Path) -> None:
    write_holdout(models, None)
    assert read_holdout(models) is None
    client.app.state.watch.check()
    assert "holdout" not in client.get("/health").json()
    assert {_predict(client, k)["modelVersion"] for k in KEYS} == {RF_VERSION}


def test_an_unreadable_holdout_file_keeps_what_is_followed(client: Client, models: Path) -> None:
    (models / "HOLDOUT").write_text("{not json")
    client.app.state.watch.check()
    assert client.get("/health").json()["holdout"]["id"] == "holdout-test"


def test_the_held_share_is_within_binomial_bounds_and_grows_only_by_adding_units() -> None:
    keys = [f"unit-{i}" for i in range(100_000)]
    small, large = holdout(weight=500), holdout(weight=1_000)
    in_small = np.array([held(k, small) for k in keys])
    in_large = np.array([held(k, large) for k in keys])
    for share, inside in ((0.05, in_small), (0.10, in_large)):
        sd = (share * (1 - share) / len(keys)) ** 0.5
        assert abs(inside.mean() - share) < 4 * sd, inside.mean()
    assert not (in_small & ~in_large).any(), "widening the holdout never moves a held unit out"


def test_a_holdout_whose_features_active_left_is_dropped_until_active_returns(
    client: Client, models: Path
) -> None:
    (models / "ACTIVE").write_text(OTHER_VERSION + "\n")
    client.app.state.watch.check()
    health = client.get("/health").json()
    assert health["modelVersion"] == OTHER_VERSION and "holdout" not in health
    assert "other features" in health["holdoutRefused"]
    (models / "ACTIVE").write_text(RF_VERSION + "\n")
    client.app.state.watch.check()
    health = client.get("/health").json()
    assert health["holdout"]["id"] == "holdout-test" and "holdoutRefused" not in health


def test_an_admin_load_of_other_features_drops_the_holdout_at_once(client: Client) -> None:
    """Not at the watcher's next look: until then held units' rows would be read with the frozen
    version's features, and their scores recorded as the holdout's."""
    client.app.state.service.load(OTHER_VERSION)  # what POST /models/{version}/load does
    health = client.get("/health").json()
    assert health["modelVersion"] == OTHER_VERSION and "holdout" not in health
    assert "other features" in health["holdoutRefused"]


def test_a_refused_successor_leaves_no_holdout_followed(client: Client, models: Path) -> None:
    """The store names holdout B (of other features) instead of A: A's salt no longer places units."""
    write_holdout(models, holdout(id="holdout-b", version=OTHER_VERSION))
    client.app.state.watch.check()
    health = client.get("/health").json()
    assert "holdout" not in health and health["holdoutRefused"].startswith(f"version {OTHER_VERSION} refused")
    assert {_predict(client, k)["modelVersion"] for k in KEYS} == {RF_VERSION}


def test_a_holdout_placed_by_another_hash_is_refused(models: Path) -> None:
    with _client(models, holdout(hash="sha256-v2")) as client:
        health = client.get("/health").json()
        assert "holdout" not in health and "hash `sha256-v2`" in health["holdoutRefused"]
