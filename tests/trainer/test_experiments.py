"""Experiments on the trainer: the checks when one starts, its life (pause, resume, stop), the store's
``EXPERIMENT`` every runtime follows, the prediction ledger and outcomes joined by prediction id."""

from __future__ import annotations

import datetime as dt
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract import MLMatchingError, list_versions, read_active
from ml_matching.contract.assignment import HASH_VERSION, unit_digest
from ml_matching.contract.experiment import Experiment, now, read_experiment
from ml_matching.contract.ids import PredictionIds
from ml_matching.contract.ledger import LedgerRow, ShadowScore
from ml_matching.trainer import TrainerSettings, create_app, observations
from ml_matching.trainer.errors import ExperimentConflict
from ml_matching.trainer.experiment_cli import call
from tests.conftest import COPY, GB_VERSION, OTHER_VERSION, RF_VERSION, SEED_ROW, copy_version
from tests.trainer.conftest import ADMIN, full_disk_at_commit, outcomes

Client = TestClient[Litestar]
ids = PredictionIds()


@pytest.fixture
def client(models: Path, tmp_path: Path) -> Iterator[Client]:
    settings = TrainerSettings(
        models_dir=models, admin_token="trainer-token", outcomes_db=str(tmp_path / "o.sqlite")
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _start(client: Client, **body: Any) -> Any:
    body = {"name": "gb-vs-rf", "candidates": [{"version": GB_VERSION, "weight": 5000}], **body}
    return client.post("/experiments", json=body, headers=ADMIN)


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["statusCode"], body["error"]) == (status, code), body
    return str(body["detail"])


def test_an_experiment_starts_on_active_and_is_published_to_the_store(client: Client, models: Path) -> None:
    answer = _start(client, shadow=[COPY], horizonDays=14)
    assert answer.status_code == 201, answer.text
    view = answer.json()
    assert answer.headers["location"] == f"/experiments/{view['id']}", "201: the URL of what was created"
    assert client.get(answer.headers["location"]).json()["id"] == view["id"]
    assert view["state"] == "running" and view["control"] == RF_VERSION and view["revision"] == 1
    assert [(a["arm"], a["version"], a["weight"]) for a in view["arms"]] == [
        ("control", RF_VERSION, 5000),
        ("candidate", GB_VERSION, 5000),
    ]
    assert view["shadow"] == [{"version": COPY, "rows": 0, "failed": 0}]
    on_file = read_experiment(models)
    assert on_file is not None and on_file.id == view["id"] and on_file.salt == view["id"]
    assert on_file.horizon_days == 14 and on_file.shadow == (COPY,) and on_file.hash == HASH_VERSION
    assert [e["kind"] for e in view["decisions"]] == ["created"]
    assert client.get("/experiments").json()[0]["id"] == view["id"]


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"candidates": [{"version": GB_VERSION, "weight": 10_001}]}, 400, "invalid_input", "<= 10000"),
        (
            {"candidates": [{"version": GB_VERSION, "weight": 6000}, {"version": COPY, "weight": 100}]},
            400, "invalid_input", "weight 6000 is more than 5000: with 2 candidates",
        ),
        ({"candidates": [{"version": "20990101_000000", "weight": 10}]}, 404, "version_not_found", "20990101_000000"),
        ({"candidates": [{"version": OTHER_VERSION, "weight": 10}]}, 400, "invalid_input", "scores other features"),
        ({"candidates": [{"version": RF_VERSION, "weight": 10}]}, 400, "invalid_input", "appears twice"),
        ({"candidates": [], "shadow": []}, 400, "invalid_input", "at least one candidate or one shadow"),
        ({"candidates": [{"version": GB_VERSION, "weight": 10, "arm": "control"}]}, 400, "invalid_input", "arm names"),
        ({"name": "has space"}, 400, "invalid_input", "$.name"),
    ],
)  # fmt: skip
def test_refusals_name_what_is_wrong(
    client: Client, body: dict[str, Any], status: int, code: str, words: str
) -> None:
    assert words in _error(_start(client, **body), status, code)
    assert client.get("/experiments").json() == [], "nothing was kept"


def test_an_unverifiable_version_is_refused(client: Client, models: Path) -> None:
    onnx = models / COPY / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\x00")
    detail = _error(_start(client, shadow=[COPY]), 422, "artifact_corrupt")
    assert COPY in detail or "sha256" in detail
    assert read_experiment(models) is None


def test_one_experiment_at_a_time_and_its_life(client: Client, models: Path) -> None:
    first = _start(client).json()
    assert "stop it before starting another" in _error(_start(client), 409, "experiment_conflict")
    assert client.post(f"/experiments/{first['id']}/pause").status_code == 401, "the admin token is required"
    paused = client.post(f"/experiments/{first['id']}/pause", headers=ADMIN).json()
    assert (paused["state"], paused["revision"]) == ("paused", 2)
    assert read_experiment(models).state == "paused"  # type: ignore[union-attr]
    assert "cannot pause" in _error(
        client.post(f"/experiments/{first['id']}/pause", headers=ADMIN), 409, "experiment_conflict"
    )
    assert client.post(f"/experiments/{first['id']}/resume", headers=ADMIN).json()["state"] == "running"
    stopped = client.post(f"/experiments/{first['id']}/stop", headers=ADMIN).json()
    assert (stopped["state"], stopped["revision"]) == ("stopped", 4)
    assert [e["kind"] for e in stopped["decisions"]] == ["created", "pause", "resume", "stop"]
    assert _start(client).status_code == 201, "a stopped experiment leaves room for another"
    _error(client.get("/experiments/exp-nope"), 404, "experiment_not_found")


def test_the_database_wins_over_a_stale_experiment_file(models: Path, tmp_path: Path) -> None:
    settings = TrainerSettings(
        models_dir=models, admin_token="trainer-token", outcomes_db=str(tmp_path / "o.sqlite")
    )
    with TestClient(create_app(settings)) as client:
        view = _start(client).json()
        client.post(f"/experiments/{view['id']}/pause", headers=ADMIN)
    stale = msgspec.structs.replace(read_experiment(models), state="running", revision=1)  # type: ignore[type-var]
    (models / "EXPERIMENT").write_bytes(msgspec.json.encode(stale))  # as if killed between file and commit
    with TestClient(create_app(settings)):
        on_file = read_experiment(models)
    assert on_file is not None and (on_file.state, on_file.revision) == ("paused", 2)


# --- the ledger and outcomes joined by prediction id -------------------------------------------


def ledger_row(experiment: Experiment, key: str, shadow: tuple[ShadowScore, ...] = ()) -> LedgerRow:
    """The row a runtime records for unit ``key`` (its assignment computed as the runtime does)."""
    arm, version, weight = experiment.assign(key)
    unit = unit_digest(experiment.salt, key).hex()
    return LedgerRow(
        ids(), "2026-11-30T12:00:00.000Z", version, 0.5, dict(SEED_ROW), experiment.id, experiment.revision,
        arm, weight, unit, HASH_VERSION, shadow=shadow,
    )  # fmt: skip


def _row_json() -> dict[str, Any]:
    """A ledger row as JSON, outside any experiment (for bodies a test spoils field by field)."""
    row = LedgerRow(ids(), "2026-11-30T12:00:00.000Z", RF_VERSION, 0.5, dict(SEED_ROW))
    return dict(msgspec.to_builtins(row))


def _post_rows(client: Client, rows: list[LedgerRow]) -> Any:
    return client.post(
        "/predictions",
        content=msgspec.json.encode({"rows": rows}),
        headers={"Content-Type": "application/json"},
    )


def test_ledger_rows_are_kept_once_and_outcomes_join_in_either_order(client: Client, models: Path) -> None:
    _start(client, shadow=[COPY])
    experiment = read_experiment(models)
    assert experiment is not None
    keys = [f"brand-{i}" for i in range(400)]
    shadow = (ShadowScore(COPY, 0.25),)
    rows = [
        ledger_row(experiment, k, shadow if i % 4 else (ShadowScore(COPY, error="timeout"),))
        for i, k in enumerate(keys)
    ]
    outcome = {r.prediction_id: random.Random(i).random() < 0.4 for i, r in enumerate(rows)}
    early = [r.prediction_id for r in rows[:40]]  # these outcomes arrive before their predictions
    before = client.post(
        "/outcomes", json={"outcomes": [{"predictionId": p, "outcome": int(outcome[p])} for p in early]}
    ).json()
    assert (before["stored"], before["pending"]) == (0, 40)
    first = _post_rows(client, rows).json()
    assert first == {"stored": 400, "duplicates": 0, "joined": 40}
    assert _post_rows(client, rows[:100]).json() == {"stored": 0, "duplicates": 100, "joined": 0}
    late = [{"predictionId": r.prediction_id, "outcome": outcome[r.prediction_id]} for r in rows[40:]]
    after = client.post("/outcomes", json={"outcomes": late}).json()
    assert (after["stored"], after["pending"], after["duplicates"]) == (360, 0, 0)
    assert client.post("/outcomes", json=late[0]).json()["duplicates"] == 1
    clash = {**late[0], "outcome": not late[0]["outcome"]}
    _error(client.post("/outcomes", json=clash), 409, "outcome_conflict")

    view = client.get(f"/experiments/{experiment.id}").json()
    arms = {a["arm"]: a for a in view["arms"]}
    for name in ("control", "candidate"):
        mine = [r for r in rows if r.arm == name]
        assert arms[name]["rows"] == arms[name]["units"] == arms[name]["scored"] == len(mine)
        assert arms[name]["outcomes"] == arms[name]["matured"] == len(mine)
        assert arms[name]["successes"] == sum(outcome[r.prediction_id] for r in mine)
    assert view["shadow"] == [{"version": COPY, "rows": 400, "failed": 100}]
    assert view["joinRate"] == 1.0 and view["pending"] == 0
    assert view["srm"]["units"] == 400 and view["srm"]["pValue"] > 0.001
    client.post(f"/experiments/{experiment.id}/stop", headers=ADMIN)
    _start(client)  # the next experiment counts none of the last one's outcomes, joined or waiting
    unknown = ids()
    assert client.post("/outcomes", json={"predictionId": unknown, "outcome": 1}).json()["pending"] == 1
    following = read_experiment(models)
    assert following is not None and following.id != experiment.id
    view = client.get(f"/experiments/{following.id}").json()
    assert (view["pending"], view["joinRate"]) == (1, 0.0)
    assert client.get(f"/experiments/{experiment.id}").json()["pending"] == 1, "received after it started"
    stats = client.get("/outcomes/stats").json()
    assert stats["total"] == 400, "joined outcomes are stored outcomes: they train like any other"


def test_joined_outcomes_carry_the_ledger_features(client: Client, models: Path) -> None:
    _start(client)
    experiment = read_experiment(models)
    assert experiment is not None
    row = ledger_row(experiment, "brand-7")
    _post_rows(client, [row])
    client.post("/outcomes", json={"predictionId": row.prediction_id, "outcome": True})
    lines = [json.loads(x) for x in client.get("/outcomes/export").text.splitlines()]
    assert lines == [{**SEED_ROW, "outcome": True}]


def test_pruning_forgets_old_ledger_rows_and_waiting_outcomes_not_joined_ones(
    client: Client, models: Path
) -> None:
    _start(client)
    experiment = read_experiment(models)
    assert experiment is not None
    row = ledger_row(experiment, "brand-1")
    _post_rows(client, [row])
    assert (
        client.post("/outcomes", json={"predictionId": row.prediction_id, "outcome": 1}).json()["stored"] == 1
    )
    waiting = ids()
    assert client.post("/outcomes", json={"predictionId": waiting, "outcome": 0}).json()["pending"] == 1
    trainer = client.app.state.trainer
    assert trainer.prune_ledger() == (0, 0), "nothing is older than LEDGER_RETENTION_DAYS yet"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=trainer.settings.ledger_retention_days + 1)
    assert trainer.prune_ledger(later) == (1, 1)
    assert client.get("/outcomes/stats").json()["total"] == 1, "the joined outcome stays: it trains"
    # Its ledger row is gone: a resend is still a duplicate, and another outcome still a conflict.
    again = client.post("/outcomes", json={"predictionId": row.prediction_id, "outcome": 1}).json()
    assert (again["stored"], again["pending"], again["duplicates"]) == (0, 0, 1)
    _error(
        client.post("/outcomes", json={"predictionId": row.prediction_id, "outcome": 0}),
        409,
        "outcome_conflict",
    )


def test_a_resent_prediction_id_with_other_content_is_a_conflict(client: Client, models: Path) -> None:
    _start(client)
    experiment = read_experiment(models)
    assert experiment is not None
    row = ledger_row(experiment, "brand-1")
    _post_rows(client, [row])
    changed = msgspec.structs.replace(row, probability=0.9)
    assert "already stored with other content" in _error(
        _post_rows(client, [changed]), 409, "prediction_conflict"
    )


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([{"predictionId": "not-a-uuid"}], "$.rows[0]"),
        ([], "length >= 1"),
        ([{**_row_json(), "revision": 2**63}], "<= 2147483647 - at `$.rows[0].revision`"),  # was a 500
        ([{**_row_json(), "revision": 0}], ">= 1 - at `$.rows[0].revision`"),
    ],
)
def test_bad_ledger_rows_are_refused(client: Client, rows: list[Any], words: str) -> None:
    assert words in _error(client.post("/predictions", json={"rows": rows}), 400, "invalid_input")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"at": "2026-11-30T99:00:00.000Z"}, "field `at`: 2026-11-30T99:00:00.000Z is no time"),
        ({"shadow": (ShadowScore(COPY, 0.2), ShadowScore(COPY, 0.3))}, f"version {COPY} is scored twice"),
        ({"error": "raised \x00"}, "NUL character"),
        ({"at": "0001-01-01T00:00:00.000Z"}, "is outside the years 2000 to 2099"),  # the report's axis broke
        ({"at": "9999-12-31T23:59:59.999Z"}, "is outside the years 2000 to 2099"),
    ],
    ids=["impossible-time", "shadow-twice", "nul", "year-1", "year-9999"],
)
def test_a_row_the_store_or_the_controller_cannot_use_is_refused_by_name(
    client: Client, models: Path, change: dict[str, Any], words: str
) -> None:
    """Stored, such a row failed later: a 500 (which a runtime resends for ever, its queue stuck
    behind it) or a controller whose every look raised. It is refused on arrival instead."""
    _start(client, shadow=[COPY])
    experiment = read_experiment(models)
    assert experiment is not None
    good, bad = (
        ledger_row(experiment, "brand-1"),
        msgspec.structs.replace(ledger_row(experiment, "brand-2"), **change),
    )
    detail = _error(_post_rows(client, [good, bad]), 400, "invalid_input")
    assert detail.startswith(f"rows[1] (prediction `{bad.prediction_id}`): ") and words in detail
    assert _post_rows(client, [good]).json()["stored"] == 1


def test_json_nested_too_deeply_is_refused(client: Client) -> None:
    body = '{"outcomes": ' + "[" * 5000 + "]" * 5000 + "}"
    response = client.post("/outcomes", content=body, headers={"Content-Type": "application/json"})
    assert "nested too deeply" in _error(response, 400, "invalid_input")


def test_a_biased_assignment_is_flagged_by_the_srm_check(client: Client, models: Path) -> None:
    """52/48 over 25,000 units where the design is 50/50: p far below 0.001."""
    _start(client)
    experiment = read_experiment(models)
    assert experiment is not None
    rows = []
    control = candidate = 0
    for i in range(200_000):
        row = ledger_row(experiment, f"u-{i}")
        if row.arm == "control" and control < 13_000:
            control += 1
            rows.append(row)
        elif row.arm == "candidate" and candidate < 12_000:
            candidate += 1
            rows.append(row)
        if control + candidate == 25_000:
            break
    for start in range(0, len(rows), 5000):
        _post_rows(client, rows[start : start + 5000])
    srm = client.get(f"/experiments/{experiment.id}").json()["srm"]
    assert srm["units"] == 25_000 and srm["pValue"] < 1e-6


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"features": {"a": 0.5}}, "rows[0] (prediction `"),
        (
            {"features": {**SEED_ROW, "brandFit": 1.5}},
            "features: feature `brandFit`: value 1.5 is outside [0, 1]",
        ),
        ({"version": "20990101_000000"}, "version 20990101_000000 is not in the store"),
    ],
)
def test_a_ledger_row_must_be_a_row_its_version_scores(
    client: Client, models: Path, change: dict[str, Any], words: str
) -> None:
    _start(client)
    experiment = read_experiment(models)
    assert experiment is not None
    row = msgspec.structs.replace(ledger_row(experiment, "brand-1"), **change)
    assert words in _error(_post_rows(client, [row]), 400, "invalid_input")
    assert client.get(f"/experiments/{experiment.id}").json()["arms"][0]["rows"] == 0, (
        "nothing of the batch kept"
    )


def test_a_candidate_declaring_other_ranges_is_refused_by_name(client: Client, models: Path) -> None:
    """Every arm answers the same request, so each must check it alike: a range declared otherwise
    would let a unit's arm decide whether its request is refused."""
    copy_version(models, GB_VERSION, "20260105_000000")
    sidecar = json.loads((models / "20260105_000000" / "model.json").read_text())
    for feature in sidecar["features"]:
        if feature["name"] == "brandFit":
            feature["max"] = 0.8
    (models / "20260105_000000" / "model.json").write_text(json.dumps(sidecar))
    answer = _start(client, candidates=[{"version": "20260105_000000", "weight": 1000}])
    assert _error(answer, 400, "invalid_input").startswith(
        f"version 20260105_000000: it declares `brandFit` over [0, 0.8], where control {RF_VERSION} "
        "declares [0, 1]: every version of an experiment answers the same request"
    )


def test_an_experiment_of_shadows_alone_shows_control_s_metrics(client: Client, models: Path) -> None:
    """Control serves every unit: its matured outcomes are its metrics, as with a candidate beside it."""
    assert _start(client, candidates=[], shadow=[COPY]).status_code == 201
    experiment = read_experiment(models)
    assert experiment is not None
    rows = [
        msgspec.structs.replace(
            ledger_row(experiment, f"brand-{i}", (ShadowScore(COPY, 0.3),)), probability=p, at=now()
        )
        for i, p in enumerate((0.9, 0.8, 0.3, 0.2))
    ]
    assert _post_rows(client, rows).status_code == 200
    outcomes = [
        {"predictionId": r.prediction_id, "outcome": y} for r, y in zip(rows, (1, 1, 0, 1), strict=True)
    ]
    assert client.post("/outcomes", json={"outcomes": outcomes}).status_code == 200
    (control,) = client.get(f"/experiments/{experiment.id}").json()["arms"]
    assert (control["arm"], control["matured"]) == ("control", 4)
    assert control["metrics"]["n"] == 4 and control["metrics"]["successRate"] == 0.75


def test_a_ledger_row_at_a_bound_float32_cannot_hold_is_kept_and_joins(client: Client, models: Path) -> None:
    # A version whose bounds float32 cannot hold: the seed row's brandFit (0.8) at its max, its
    # locationMatch (0.7) at its min. The runtimes record the float32 values the model scored,
    # 0.800000011920929 and 0.699999988079071: past the bounds in float64, the same row in float32.
    edged = "20260105_000000"
    copy_version(models, GB_VERSION, edged)
    sidecar = json.loads((models / edged / "model.json").read_text())
    for feature in sidecar["features"]:
        feature.update({"brandFit": {"max": 0.8}, "locationMatch": {"min": 0.7}}.get(feature["name"], {}))
    (models / edged / "model.json").write_text(json.dumps(sidecar))
    scored = {name: float(np.float32(value)) for name, value in SEED_ROW.items()}
    assert scored["brandFit"] > 0.8 and scored["locationMatch"] < 0.7
    row = LedgerRow(ids(), "2026-11-30T12:00:00.000Z", edged, 0.5, scored)
    assert _post_rows(client, [row]).json() == {"stored": 1, "duplicates": 0, "joined": 0}
    joined = client.post("/outcomes", json={"predictionId": row.prediction_id, "outcome": 1}).json()
    assert joined["stored"] == 1, joined
    # A value truly past a bound is still refused, named, though a rounded one comes first.
    past = LedgerRow(ids(), "2026-11-30T12:00:00.000Z", edged, 0.5, {**scored, "locationMatch": 0.69})
    words = _error(_post_rows(client, [past]), 400, "invalid_input")
    assert "feature `locationMatch`: value 0.69 is outside [0.7, 1]" in words, words


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n<html>no"],
    ids=["not-http", "not-json"],
)
def test_the_cli_names_an_address_that_is_not_the_trainer(answer: bytes) -> None:
    """Pointed at another service, the CLI says so instead of failing with a traceback."""
    server = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{server.getsockname()[1]}/experiments"

    def answer_once() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(answer)

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        with pytest.raises(MLMatchingError, match=r"did not answer as the trainer does .*ML_TRAINER_URL"):
            call("GET", url)
    finally:
        thread.join(5)
        server.close()


def test_a_retrain_that_passes_the_gate_leaves_active_to_the_running_experiment(
    models: Path, tmp_path: Path, fast_config_file: Path
) -> None:
    """With PROMOTION=gate, a retrain during an experiment is published but not activated: the
    experiment's promotion would overwrite it, and its rollback keep a version it never tested."""
    settings = TrainerSettings(
        models_dir=models, admin_token="trainer-token", outcomes_db=str(tmp_path / "o.sqlite"),
        train_config=fast_config_file, promotion_tolerance=1.0, retrain_every=0,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        assert _start(client).status_code == 201
        body = {"outcomes": outcomes(80, seed=11)}
        assert client.post("/outcomes", json=body).status_code == 200
        job = client.post("/train", headers=ADMIN).json()
        assert job["status"] == "success" and job["promoted"] is True, job
        assert job["modelVersion"] in list_versions(models)
        assert read_active(models) == RF_VERSION
        view = client.get(f"/train/{job['job']}").json()
        assert any(line.startswith("not activated: experiment ") for line in view["progress"]), view


def test_a_commit_that_fails_leaves_the_published_file_as_it_was(
    client: Client, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXPERIMENT is written inside the transaction; when the commit then fails (a full disk), the
    file is put back, so no runtime follows an experiment the trainer does not hold."""
    commits = full_disk_at_commit(monkeypatch)
    assert _start(client).status_code == 507
    assert read_experiment(models) is None and client.get("/experiments").json() == []
    commits()
    experiment_id = _start(client).json()["id"]
    full_disk_at_commit(monkeypatch)
    assert client.post(f"/experiments/{experiment_id}/pause", headers=ADMIN).status_code == 507
    on_file = read_experiment(models)
    assert on_file is not None and on_file.state == "running"


def test_two_pauses_at_once_leave_the_file_as_the_database_says(client: Client, models: Path) -> None:
    """Both wait for the write lock; the second is refused (already paused). Its refusal must not
    put back a copy of EXPERIMENT older than the first one's commit."""
    experiment_id = _start(client).json()["id"]
    book = client.app.state.trainer._book
    outcomes_of: list[str] = []

    def pause() -> None:
        try:
            outcomes_of.append(book.transition(experiment_id, "pause").state)
        except ExperimentConflict:
            outcomes_of.append("refused")

    with book.db._lock:  # another writer holds the lock while both requests arrive
        threads = [threading.Thread(target=pause) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.2)
    for t in threads:
        t.join(10)
    assert sorted(outcomes_of) == ["paused", "refused"]
    on_file = read_experiment(models)
    assert on_file is not None and on_file.state == "paused" == book.get(experiment_id).state


def test_the_split_comparison_keeps_to_the_rows_served_under_one_weight(client: Client, models: Path) -> None:
    """Rows a runtime served under the previous split (weight 1,000) after the step moved to 5,000
    are left out of that step's comparison; without a weight, all count."""
    _start(client)
    experiment = read_experiment(models)
    assert experiment is not None
    rows = [ledger_row(experiment, f"brand-{i}") for i in range(40)]  # weight 5,000 each arm (40: no retrain)
    stale = [msgspec.structs.replace(r, weight=1000 if r.arm == "candidate" else 9000) for r in rows[:10]]
    rows = [*stale, *rows[10:]]
    _post_rows(client, rows)
    client.post(
        "/outcomes", json={"outcomes": [{"predictionId": r.prediction_id, "outcome": 1} for r in rows]}
    )
    book = client.app.state.trainer._book
    with book.db.read() as tx:
        at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        control, treated = observations.split(
            tx, experiment, "candidate", "2026-01-01T00:00:00.000Z", at, 5000
        )
        every = observations.split(tx, experiment, "candidate", "2026-01-01T00:00:00.000Z", at)
    assert control.n + treated.n == 30 and every[0].n + every[1].n == 40


def test_versions_of_one_feature_set_share_it(client: Client) -> None:
    """The trainer reads the features of each version a ledger row names: a version a retraining,
    nearly all with the same features, so it keeps each distinct set once."""
    trainer = client.app.state.trainer
    rf, gb, other = (trainer._version_features(v) for v in (RF_VERSION, GB_VERSION, OTHER_VERSION))
    assert rf is gb and rf is not other and rf.names != other.names
