"""A runtime under an experiment: units served by their arm, keys in every form the API takes, the
ledger rows it records, refused versions, and shadows that never delay or fail an answer."""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract import load_version
from ml_matching.contract.assignment import HASH_VERSION, unit_digest
from ml_matching.contract.experiment import Candidate, Experiment, now, write_experiment
from ml_matching.contract.ledger import LedgerBatch, LedgerRow
from ml_matching.runtime import create_app, ledger
from ml_matching.runtime.ledger import LedgerSender
from ml_matching.runtime.ledger_process import LedgerProcess
from ml_matching.runtime.ledger_wire import Group
from ml_matching.runtime.scoring import Scorer, new_prediction_id
from ml_matching.runtime.settings import Settings
from ml_matching.runtime.shadow import Shadows
from tests.conftest import COPY, GB_VERSION, OTHER_VERSION, RF_VERSION, SEED_ROW, copy_version
from tests.runtime.fake_trainer import FakeTrainer
from tests.support import send_queued

Client = TestClient[Litestar]
KEYS = [f"brand-{i}" for i in range(200)]


def experiment(**changes: Any) -> Experiment:
    base = Experiment(
        id="exp-test", name="gb-vs-rf", state="running", control=RF_VERSION,
        candidates=(Candidate("candidate", GB_VERSION, 5000),), shadow=(), salt="exp-test",
        horizon_days=30, created_at=now(),
    )  # fmt: skip
    return Experiment(**{**{f: getattr(base, f) for f in base.__struct_fields__}, **changes})


def _client(models: Path, exp: Experiment | None, **settings: Any) -> Client:
    if exp is not None:
        write_experiment(models, exp)
    return TestClient(create_app(Settings(models_dir=models, **settings)))


class Captured:
    """The ledger rows the runtime hands to its ledger process, made as that process makes them
    (the process itself: test_ledger_process.py; the sending: tests/e2e)."""

    def __init__(self, client: Client) -> None:
        self.rows: list[LedgerRow] = []
        serving = client.app.state.serving
        serving.recorder.ledger.put_group = self._made
        self.shadows = serving.recorder.shadows
        self.shadows._deliver = self._made

    def _made(self, group: Group) -> None:
        self.rows.extend(group.rows())

    def settled(self) -> list[LedgerRow]:
        assert self.shadows.wait_idle(10)
        return self.rows


@pytest.fixture
def client(models: Path) -> Iterator[Client]:
    with _client(models, experiment()) as c:
        yield c


def _predict(client: Client, key: str | None, **params: str) -> dict[str, Any]:
    headers = {} if key is None else {"ML-Unit-Key": urllib.parse.quote(key, safe="")}
    response = client.post("/predict", json=SEED_ROW, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_each_unit_is_served_by_its_arm(client: Client) -> None:
    exp = experiment()
    for key in KEYS:
        answer = _predict(client, key)
        arm, version, _ = exp.assign(key)
        assert (answer["experiment"], answer["arm"], answer["modelVersion"]) == ("exp-test", arm, version)
    served = {_predict(client, k)["arm"] for k in KEYS}
    assert served == {"control", "candidate"}


def test_without_a_key_control_serves_outside_the_experiment(client: Client) -> None:
    answer = _predict(client, None)
    assert answer["modelVersion"] == RF_VERSION and "experiment" not in answer and "arm" not in answer
    assert answer["predictionId"]


@pytest.mark.parametrize("key", ["Café Müller GmbH", "株式会社サンプル", "🦄 brand"])
def test_a_percent_encoded_utf8_key_is_the_same_unit(client: Client, key: str) -> None:
    arm, _, _ = experiment().assign(key)
    assert _predict(client, key)["arm"] == arm


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("", "header `ML-Unit-Key` is empty"),
        ("%FF%FE", "not valid percent-encoded UTF-8"),
        ("x" * 5000, "more than 4096"),
        ("50%zz", "a `%` not followed by two hex digits (a literal `%` is `%25`)"),  # was the key as typed
        ("50%", "a `%` not followed by two hex digits"),
    ],
)
def test_bad_keys_are_refused_with_their_reason(client: Client, header: str, words: str) -> None:
    response = client.post("/predict", json=SEED_ROW, headers={"ML-Unit-Key": header})
    assert response.status_code == 400, response.text
    assert words in response.json()["detail"]


@pytest.mark.parametrize("params", [{}, {"explain": "true"}])
def test_a_key_sent_as_raw_utf8_is_refused_not_hashed_as_latin_1(
    client: Client, params: dict[str, str]
) -> None:
    """Header bytes reach the app as Latin-1: `ü` sent raw was hashed as `Ã¼`, another unit than the
    Node client's and the percent-encoded key's, in another arm, with no error."""
    raw = "Müller".encode()
    response = client.post("/predict", json=SEED_ROW, headers={"ML-Unit-Key": raw}, params=params)
    assert response.status_code == 400, response.text
    assert "header `ML-Unit-Key` holds bytes outside ASCII" in response.json()["detail"]
    assert _predict(client, "Müller")["arm"] == experiment().assign("Müller")[0]


def test_a_batch_routes_each_row_by_its_unit(client: Client) -> None:
    body = {"instances": [SEED_ROW] * len(KEYS), "units": KEYS}
    answer = client.post("/predict/batch", json=body).json()
    exp = experiment()
    for key, prediction in zip(KEYS, answer["predictions"], strict=True):
        assert prediction["arm"] == exp.assign(key)[0]
    ids = [p["predictionId"] for p in answer["predictions"]]
    assert len(set(ids)) == len(ids) and ids == sorted(ids), "unique, and sortable in the order made"


def test_the_units_of_a_batch_must_match_its_rows(client: Client) -> None:
    response = client.post("/predict/batch", json={"instances": [SEED_ROW] * 2, "units": ["a"]})
    assert response.status_code == 400 and "units" in response.json()["detail"]


def test_every_row_of_the_experiment_is_in_the_ledger_with_the_served_score(client: Client) -> None:
    captured = Captured(client)
    answers = {k: _predict(client, k) for k in KEYS[:50]}
    _predict(client, None)  # outside the experiment: not recorded (LEDGER=experiments)
    rows = {r.prediction_id: r for r in captured.settled()}
    assert len(rows) == 50
    exp = experiment()
    for key, answer in answers.items():
        row = rows[answer["predictionId"]]
        arm, version, weight = exp.assign(key)
        assert (row.experiment, row.revision, row.arm, row.version, row.weight) == (
            "exp-test",
            1,
            arm,
            version,
            weight,
        )
        assert row.unit == unit_digest("exp-test", key).hex() and row.hash == HASH_VERSION
        assert row.probability == pytest.approx(answer["successProbability"] / 100)
        assert row.features == pytest.approx(SEED_ROW) and not row.fallback


@pytest.mark.parametrize(("mode", "recorded"), [("all", 2), ("off", 0), ("experiments", 1)])
def test_the_ledger_setting(models: Path, mode: str, recorded: int) -> None:
    with _client(models, experiment(), ledger=mode) as client:
        captured = Captured(client)
        _predict(client, "brand-1")
        _predict(client, None)
        assert len(captured.settled()) == recorded


def test_a_refused_version_is_not_served_and_the_refusal_shows(models: Path) -> None:
    onnx = models / COPY / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\x00")
    exp = experiment(candidates=(Candidate("candidate", COPY, 10_000),))
    with _client(models, exp) as client:
        captured = Captured(client)
        answer = _predict(client, "brand-1")
        assert (answer["arm"], answer["modelVersion"]) == ("candidate", RF_VERSION), (
            "control serves its units"
        )
        health = client.get("/health").json()["experiment"]
        (candidate,) = [a for a in health["arms"] if a["arm"] == "candidate"]
        assert "sha256" in candidate["refused"] or "model.onnx" in candidate["refused"]
        assert captured.settled()[0].fallback


def test_an_experiment_whose_control_cannot_load_is_not_followed(models: Path) -> None:
    exp = experiment(control="20990101_000000")
    with _client(models, exp) as client:
        answer = _predict(client, "brand-1")
        assert "experiment" not in answer and answer["modelVersion"] == RF_VERSION
        assert "20990101_000000" in client.get("/health").json()["experimentRefused"]
        assert client.get("/experiment").status_code == 404


def test_get_experiment_is_what_the_runtime_follows(client: Client) -> None:
    assert client.get("/experiment").json()["salt"] == "exp-test"


@pytest.mark.parametrize("state", ["paused", "stopped"])
def test_paused_or_stopped_serves_everyone_with_control(models: Path, state: str) -> None:
    with _client(models, experiment(state=state)) as client:
        captured = Captured(client)
        answer = _predict(client, "brand-1")
        assert answer["modelVersion"] == RF_VERSION and "arm" not in answer
        assert captured.settled() == []


def _ranged(models: Path, source: str, name: str, **bounds: float) -> None:
    """A copy of ``source`` named ``name`` whose sidecar declares other ranges: ``brandFit=(0, 0.8)``."""
    copy_version(models, source, name)
    sidecar = json.loads((models / name / "model.json").read_text())
    for feature in sidecar["features"]:
        if feature["name"] in bounds:
            feature["min"], feature["max"] = bounds[feature["name"]]
    (models / name / "model.json").write_text(json.dumps(sidecar))


@pytest.mark.parametrize(
    ("candidate", "why"),
    [
        (OTHER_VERSION, f"it scores other features than control {RF_VERSION}"),
        (
            "20260105_000000",
            f"it declares `brandFit` over [0, 0.8], where control {RF_VERSION} declares [0, 1]",
        ),
    ],
)
def test_a_candidate_of_other_features_or_ranges_is_refused(models: Path, candidate: str, why: str) -> None:
    """Every arm answers the same request: were a range declared otherwise, a unit's arm would
    decide whether its request is refused."""
    _ranged(models, GB_VERSION, "20260105_000000", brandFit=(0.0, 0.8))
    exp = experiment(candidates=(Candidate("candidate", candidate, 10_000),))
    with _client(models, exp) as client:
        answer = _predict(client, "brand-1")
        assert (answer["arm"], answer["modelVersion"]) == ("candidate", RF_VERSION)
        (arm,) = [a for a in client.get("/health").json()["experiment"]["arms"] if a["arm"] == "candidate"]
        assert arm["refused"] == why


class _Raising:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("the shadow's session failed")


class _FailingSession:
    """A version whose session raises as it scores (its sidecar and feature set still read)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def predict_proba(self, x: np.ndarray) -> Any:
        raise RuntimeError("the session failed")

    probabilities = predict_proba

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class _Slow:
    def __init__(self, model: Any) -> None:
        self._model = model

    def predict_proba(self, x: np.ndarray) -> Any:
        time.sleep(0.05)
        return self._model.predict_proba(x)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _sabotage(client: Client, how: str) -> None:
    """Make the shadow version's scoring raise, or take 50 ms a batch."""
    arms = client.app.state.service.arms
    (shadow,) = arms.shadows
    object.__setattr__(shadow, "model", _Raising() if how == "raises" else _Slow(shadow.model))


@pytest.mark.parametrize("how", ["raises", "slow"])
def test_a_failing_or_slow_shadow_never_fails_or_delays_an_answer(models: Path, how: str) -> None:
    with _client(models, experiment(shadow=(COPY,))) as client:
        captured = Captured(client)
        _sabotage(client, how)
        started = time.monotonic()
        answers = [_predict(client, k) for k in KEYS]
        elapsed = time.monotonic() - started
        assert all("predictionId" in a for a in answers), "every answer served"
        rows = captured.settled()
        assert len(rows) == len(KEYS)
        shadow = [s for r in rows for s in r.shadow]
        if how == "raises":
            assert all(s.error and s.probability is None for s in shadow) and len(shadow) == len(KEYS)
        else:
            # 200 requests made one after another would take ≥ 10 s if each waited for the 50 ms shadow.
            assert elapsed < 0.05 * len(KEYS) / 2, elapsed
        metrics = client.get("/metrics").text
        assert "ml_matching_shadow_rows_total" in metrics


@pytest.mark.parametrize("explain", ["false", "true"])
def test_a_candidate_that_raises_never_fails_an_answer(models: Path, explain: str) -> None:
    """Control serves the candidate's units; the ledger says why (the controller's guardrail)."""
    with _client(models, experiment(candidates=(Candidate("candidate", COPY, 10_000),))) as client:
        captured = Captured(client)
        (candidate,) = client.app.state.service.arms.candidates
        object.__setattr__(candidate, "model", _Raising())
        answers = [_predict(client, k, explain=explain) for k in KEYS[:20]]
        assert {(a["arm"], a["modelVersion"]) for a in answers} == {("candidate", RF_VERSION)}
        batch = client.post("/predict/batch", json={"instances": [SEED_ROW] * 3, "units": KEYS[:3]})
        assert batch.status_code == 200 and {p["arm"] for p in batch.json()["predictions"]} == {"candidate"}
        rows = captured.settled()
        assert len(rows) == 23 and all(r.fallback and "raised RuntimeError" in (r.error or "") for r in rows)
        assert (
            'ml_matching_experiment_rows_total{arm="candidate",served_by="fallback"} 23.0'
            in client.get("/metrics").text
        )


@pytest.mark.parametrize("load", ["lazy", "off"])
def test_an_explanation_the_arm_cannot_give_is_refused_not_served_by_control(
    models: Path, load: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A unit whose arm's version has no explainer (or a runtime with EXPLAIN_LOAD=off), asked to
    explain: the caller asked what that version cannot answer, as it would of control alone. 409,
    not control's answer in the candidate's name, and nothing counted against the candidate (the
    controller's error-rate guardrail reads fallbacks)."""
    unexplained = "20260105_000000"
    copy_version(models, GB_VERSION, unexplained)
    sidecar = json.loads((models / unexplained / "model.json").read_text())
    (models / unexplained / "model.json").write_text(json.dumps({**sidecar, "explanation": None}))
    exp = experiment(candidates=(Candidate("candidate", unexplained, 10_000),))
    with _client(models, exp, explain_load=load) as client:
        captured = Captured(client)
        headers = {"ML-Unit-Key": "brand-1"}
        one = client.post("/predict", params={"explain": "true"}, json=SEED_ROW, headers=headers)
        batch = client.post(
            "/predict/batch?explain=true", json={"instances": [SEED_ROW], "units": ["brand-1"]}
        )
        for answer in (one, batch):
            assert (answer.status_code, answer.json()["error"]) == (409, "explanation_unavailable"), (
                answer.text
            )
        served = _predict(client, "brand-1")
        assert (served["arm"], served["modelVersion"]) == ("candidate", unexplained)
        assert [(r.version, r.fallback, r.error) for r in captured.settled()] == [(unexplained, False, None)]
        assert 'served_by="fallback"' not in client.get("/metrics").text
    assert "control served" not in caplog.text


def test_an_open_inference_request_falls_back_to_control_when_its_arm_raises(models: Path) -> None:
    from tests.runtime.test_v2 import FEATURE_NAMES, INFER, tensor

    with _client(models, experiment(candidates=(Candidate("candidate", COPY, 10_000),))) as client:
        captured = Captured(client)
        (candidate,) = client.app.state.service.arms.candidates
        object.__setattr__(candidate, "model", _FailingSession(candidate.model))
        request = {**tensor([SEED_ROW[f] for f in FEATURE_NAMES] * 2), "parameters": {"unit": "b-1"}}
        response = client.post(INFER, json=request)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model_version"] == RF_VERSION and answer["parameters"]["arm"] == "candidate"
        rows = captured.settled()
        assert len(rows) == 2 and all(r.fallback and "raised RuntimeError" in (r.error or "") for r in rows)


def test_ledger_rows_carry_how_long_the_serving_version_took(models: Path) -> None:
    with _client(models, experiment(candidates=(Candidate("candidate", COPY, 10_000),))) as client:
        captured = Captured(client)
        (candidate,) = client.app.state.service.arms.candidates
        object.__setattr__(candidate, "model", _Slow(candidate.model))
        _predict(client, "brand-1")
        (row,) = captured.settled()
        assert row.ms is not None and row.ms >= 50 and not row.fallback


@pytest.mark.parametrize(
    ("units", "words"),
    [
        ([""], "`units` key 0: expected a non-empty text key"),
        ([7], "`units` key 0: expected a non-empty text key (a brand id, a pair id), got a number"),
        ("x", '`units` must be a list of unit keys, got a string "x"'),
    ],
)
def test_bad_units_are_named(client: Client, units: Any, words: str) -> None:
    response = client.post("/predict/batch", json={"instances": [SEED_ROW], "units": units})
    assert response.status_code == 400 and words in response.json()["detail"]


def test_an_explained_batch_across_arms_gives_each_row_its_own_base(client: Client) -> None:
    """Each row's contributions add up from its own version's base to its own output."""
    body = {"instances": [SEED_ROW] * 40, "units": KEYS[:40]}
    answer = client.post("/predict/batch?explain=true", json=body).json()
    versions = {p["modelVersion"] for p in answer["predictions"]}
    assert versions == {RF_VERSION, GB_VERSION}
    assert answer["explanationScale"] == "log-odds"  # both fixture versions explain in log-odds
    for p in answer["predictions"]:
        total = p["baseValue"] + sum(p["contributions"].values())
        probability = p["successProbability"] / 100
        assert total == pytest.approx(np.log(probability / (1 - probability)), abs=2e-3), p["modelVersion"]


def _ledger_rows(n: int) -> list[LedgerRow]:
    return [
        LedgerRow(
            new_prediction_id(), "2026-11-30T00:00:00.000Z", RF_VERSION, i / n, {"a": 0.5, "b": i * 1.5}
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [1, 99, 100, 101, 999, 1000, 1001, 2500])
def test_rows_encoded_as_queued_post_as_the_batch_they_are(n: int) -> None:
    """The sender queues rows as JSON, in parts of at most BATCH_ROWS rows, and its thread posts the
    parts at the front of its queue that fit in one batch: each body is byte for byte the batch
    msgspec encodes in one call, no body holds more than BATCH_ROWS rows, and together they hold
    every row once, in order."""
    rows = _ledger_rows(n)
    trainer = FakeTrainer()
    sender = LedgerSender(trainer.url, 10_000, linger=0.0)
    sender.put(rows[:7])  # a group of a few rows, then the rest in one put (a batch request's)
    sender.put(rows[7:])
    assert sender.counts.queued == n
    try:
        send_queued(sender)
    finally:
        trainer.close()
    posted: list[LedgerRow] = []
    for body in trainer.bodies:
        sent = msgspec.json.decode(body, type=LedgerBatch).rows
        assert 1 <= len(sent) <= ledger.BATCH_ROWS
        assert body == msgspec.json.encode(LedgerBatch(rows=list(sent)))
        posted.extend(sent)
    assert posted == rows
    assert (sender.counts.sent, sender.counts.queued, sender.counts.dropped) == (n, 0, 0)


def test_a_full_queue_keeps_the_rows_that_fit_and_counts_the_rest() -> None:
    rows = [
        LedgerRow(new_prediction_id(), "2026-11-30T00:00:00.000Z", RF_VERSION, 0.5, {"a": 0.5})
        for _ in range(8)
    ]
    sender = LedgerSender("http://127.0.0.1:9", 5)
    sender.put(rows[:3])
    sender.put(rows[3:6])
    sender.put(rows[6:])  # the queue is full: nothing of it is kept
    assert (sender.counts.queued, sender.counts.dropped) == (5, 3)
    kept = msgspec.json.decode(ledger.body(list(sender._rows)), type=LedgerBatch).rows
    assert list(kept) == rows[:5]


def test_an_experiment_assigned_by_another_hash_is_not_followed(models: Path) -> None:
    """Applying this release's hash to it would put units in other arms than the trainer means."""
    with _client(models, experiment(hash="sha256-v2")) as client:
        health = client.get("/health").json()
        assert "experiment" not in health and "upgrade this runtime" in health["experimentRefused"]
        assert "arm" not in _predict(client, "brand-1")


def test_an_experiment_followed_until_the_store_names_one_it_cannot_follow_is_let_go(models: Path) -> None:
    """The store no longer names the experiment followed until then: its split ends with it, as
    when an experiment ends, and ACTIVE alone serves (as the Node client does)."""
    with _client(models, experiment()) as client:
        assert "arm" in _predict(client, "brand-1")
        successor = experiment(id="exp-next", salt="exp-next", hash="sha256-v2")
        write_experiment(models, successor)
        client.app.state.service.follow(successor)
        health = client.get("/health").json()
        assert "experiment" not in health and "upgrade this runtime" in health["experimentRefused"]
        answer = _predict(client, "brand-1")
        assert "arm" not in answer and answer["modelVersion"] == RF_VERSION


def test_batches_halved_by_a_413_grow_back_once_the_oversized_row_is_gone() -> None:
    """One row too large for the trainer's limit halves the batches down to that row alone (it is
    dropped); then the batches double again every GROW_AFTER sends instead of staying at one row."""
    rows = _ledger_rows(3000)
    huge = msgspec.structs.replace(rows[0], error="x" * 30_000)  # one row over the trainer's 20 kB
    trainer = FakeTrainer(max_body=20_000)
    sender = LedgerSender(trainer.url, 10_000, linger=0.0)
    sender.put([huge, *rows[1:]])
    try:
        send_queued(sender)
    finally:
        trainer.close()
    assert (sender.counts.sent, sender.counts.refused) == (2999, 1)
    assert sender.batch_rows >= 64 and trainer.posts < 200, (sender.batch_rows, trainer.posts)


def test_a_refusal_that_is_not_about_the_rows_drops_the_batch_in_one_post() -> None:
    """A 401 (a proxy asking for a token) refuses every row alike: the batch is dropped at once,
    not sent again row by row."""
    trainer = FakeTrainer(status=401)
    sender = LedgerSender(trainer.url, 10_000, linger=0.0)
    sender.put(_ledger_rows(50))
    try:
        send_queued(sender)
    finally:
        trainer.close()
    assert (trainer.posts, sender.counts.refused, sender.counts.dropped) == (1, 50, 50)


def test_a_trainer_that_keeps_failing_is_logged_once_then_its_recovery(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows wait while the trainer answers 507 (its disk full); the log says so once, with the
    trainer's reason, not at every retry, and says when it takes rows again."""
    monkeypatch.setattr(ledger, "BACKOFF", (0.01,))
    trainer = FakeTrainer(status=507, times=6)
    sender = LedgerSender(trainer.url, 100, linger=0.0)
    rows = _ledger_rows(3)
    sender.put(rows)
    with caplog.at_level(logging.INFO, logger="ml_matching"):
        try:
            send_queued(sender)
        finally:
            trainer.close()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "ml_matching"]
    assert said == [
        (
            "WARNING",
            f"ledger: the trainer at {sender.url} answers 507 (/data/outcomes.sqlite: database or disk is "
            "full); rows wait in the queue and are sent again",
        ),
        ("INFO", f"ledger: the trainer at {sender.url} takes rows again"),
    ]
    assert trainer.posts == 7 and (sender.counts.sent, sender.counts.dropped) == (3, 0)


def test_rows_a_full_queue_drops_are_logged_with_their_count_not_at_every_drop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ledger, "DROPS_LOGGED_EVERY", 3600.0)
    sender = LedgerSender("http://127.0.0.1:9", 5)
    rows = _ledger_rows(12)
    with caplog.at_level(logging.WARNING, logger="ml_matching"):
        sender.put(rows[:8])  # 3 dropped: said
        sender.put(rows[8:10])  # 2 more: counted, not said again within the hour
        sender.put(rows[10:11])
        monkeypatch.setattr(ledger, "DROPS_LOGGED_EVERY", 0.0)  # the hour is up
        sender.put(rows[11:])
    said = [r.getMessage() for r in caplog.records if r.name == "ml_matching"]
    assert [m.split(" (")[0] for m in said] == [
        "ledger: 3 rows dropped: the ledger queue is full",
        "ledger: 4 rows dropped: the ledger queue is full",
    ]
    assert "LEDGER_QUEUE=5 rows" in said[0]
    assert sender.counts.dropped == 7


@pytest.mark.parametrize("status", [200, 502], ids=["answer", "error-answer"])
def test_an_answer_broken_off_mid_body_is_retried_and_the_sender_keeps_sending(status: int) -> None:
    trainer = FakeTrainer(break_first=status)
    sender = LedgerSender(trainer.url, 100, linger=0.0)
    rows = _ledger_rows(3)
    try:
        sender.start()
        sender.put(rows[:2])
        assert sender.wait_sent(10), sender.counts
        sender.put(rows[2:])
        assert sender.wait_sent(10), sender.counts
    finally:
        sender.stop(flush_seconds=0)
        trainer.close()
    posted = [r for b in trainer.bodies for r in msgspec.json.decode(b, type=LedgerBatch).rows]
    assert posted == rows  # the broken batch again, then the next: none lost, the resend harmless
    assert (sender.counts.sent, sender.counts.dropped, sender.counts.queued) == (3, 0, 0)


def test_the_shadow_thread_goes_on_when_the_queue_fills_as_it_looks_ahead(models: Path) -> None:
    """The shadow thread takes what waits behind a batch to score it together. When that is another
    experiment's rows (a switch of experiment), it keeps them for its next turn: had it put them back
    in a queue the request path had just filled, it would wait on itself for ever, and every row
    after that would go to the ledger without shadow scores."""
    gb, copy = (Scorer(load_version(models, v), 100) for v in (GB_VERSION, COPY))
    delivered: list[LedgerRow] = []
    shadows = Shadows(2, lambda group: delivered.extend(group.rows()), lambda *_: None)
    batches = [_shadow_group(1) for _ in range(4)]
    shadows.submit((gb,), batches[0])
    shadows.submit((copy,), batches[1])  # the experiment changed: other shadows
    take, refilled = shadows._queue.get_nowait, list[bool]()

    def look_ahead() -> Any:
        item = take()
        if not refilled:  # the request path, at that instant, fills the queue again
            refilled.append(True)
            shadows.submit((gb,), batches[2])
            shadows.submit((gb,), batches[3])
        return item

    shadows._queue.get_nowait = look_ahead  # type: ignore[method-assign]
    shadows.start()
    assert shadows.wait_idle(10), "the shadow thread stopped taking rows"
    shadows.stop()
    scored_by = {r.prediction_id: [s.version for s in r.shadow if s.error is None] for r in delivered}
    want = [GB_VERSION, COPY, GB_VERSION, GB_VERSION]
    assert scored_by == {b.served[0][0]: [v] for b, v in zip(batches, want, strict=True)}


def test_the_shadow_thread_goes_on_after_a_failure_outside_a_shadow(models: Path) -> None:
    gb = Scorer(load_version(models, GB_VERSION), 100)
    delivered: list[LedgerRow] = []

    def deliver(group: Group) -> None:  # the ledger's put_group, failing once
        if not delivered:
            delivered.append(group.rows()[0])
            raise RuntimeError("the ledger failed once")
        delivered.extend(group.rows())

    shadows = Shadows(10, deliver, lambda *_: None)
    first, later = _shadow_group(1), _shadow_group(1)
    shadows.start()
    shadows.submit((gb,), first)
    assert shadows.wait_idle(10)
    shadows.submit((gb,), later)
    assert shadows.wait_idle(10), "the shadow thread ended"
    shadows.stop()
    assert [r.prediction_id for r in delivered] == [first.served[0][0], later.served[0][0]]


def _shadow_group(n: int) -> Group:
    """A group of ``n`` experiment rows of SEED_ROW, as the runtime hands it to the shadows."""
    x = np.array([list(SEED_ROW.values())] * n, dtype=np.float32)
    served = [
        (new_prediction_id(), RF_VERSION, 0.5, 1.0, "exp-1", "control", 5000, "ab" * 32, False, None, None)
        for _ in range(n)
    ]
    return Group("2026-11-30T00:00:00.000Z", 1, tuple(SEED_ROW), x.tobytes(), served)


def test_the_shadow_thread_scores_what_came_during_its_linger_in_one_call(models: Path) -> None:
    """Woken for each event-loop turn's rows, the thread scored one or two rows a call and took the
    GIL from the event loop each time: it lingers, then scores everything queued together."""
    gb = Scorer(load_version(models, GB_VERSION), 100)
    calls: list[tuple[str, int]] = []
    delivered: list[LedgerRow] = []
    shadows = Shadows(
        100,
        lambda group: delivered.extend(group.rows()),
        lambda _v, what, n: calls.append((what, n)),
        linger=0.5,
    )
    shadows.start()
    shadows.submit((gb,), _shadow_group(1))
    time.sleep(0.1)  # the thread took the first batch and lingers
    for _ in range(4):
        shadows.submit((gb,), _shadow_group(1))
    assert shadows.wait_idle(10)
    shadows.stop()
    assert calls == [("scored", 5)] and len(delivered) == 5
    assert all(r.shadow[0].probability is not None for r in delivered)


def test_a_half_full_shadow_queue_ends_the_linger(models: Path) -> None:
    """The linger must not fill the queue: rows past it would be recorded without shadow scores."""
    gb = Scorer(load_version(models, GB_VERSION), 100)
    calls: list[tuple[str, int]] = []
    shadows = Shadows(8, lambda group: None, lambda _v, what, n: calls.append((what, n)), linger=60.0)
    shadows.start()
    shadows.submit((gb,), _shadow_group(1))
    time.sleep(0.1)  # the thread took it and lingers, for a minute unless the queue fills
    for _ in range(4):  # half of the 8
        shadows.submit((gb,), _shadow_group(1))
    assert shadows.wait_idle(10), "the thread lingered on with a half-full queue"
    shadows.stop()
    assert calls == [("scored", 5)]


@pytest.mark.parametrize(
    "ns", [1_764_633_600_123_999_999, 1_764_633_600_000_000_000, 1_764_633_659_999_000_001]
)
def test_a_ledger_row_s_time_is_its_millisecond(monkeypatch: pytest.MonkeyPatch, ns: int) -> None:
    """Formatted once a millisecond, the time is still the row's own millisecond, truncated as
    datetime's isoformat truncates, and a new millisecond is formatted again."""
    from ml_matching.runtime import serving

    def iso(ns: int) -> str:  # counted from the epoch, not computed as _now computes it
        at = serving.dt.datetime(1970, 1, 1, tzinfo=serving.dt.UTC) + serving.dt.timedelta(
            microseconds=ns // 1000
        )
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    recorder = serving.Recorder(
        "all", LedgerProcess(None, 10), Shadows(1, lambda _: None, lambda *_: None), print
    )
    for clock in (ns, ns + 999, ns + 1_000_000):  # the next millisecond is formatted again
        monkeypatch.setattr(serving.time, "time_ns", lambda clock=clock: clock)
        assert recorder._now() == iso(clock)


@pytest.mark.parametrize("mode", ["off", "experiments", "all"])
def test_rows_served_per_arm_are_counted_whatever_the_ledger_records(models: Path, mode: str) -> None:
    """``ml_matching_experiment_rows_total`` counts what the arms served; with LEDGER=off it stayed
    at 0, as if no experiment ran."""
    exp = experiment()
    with _client(models, exp, ledger=mode) as client:
        for key in KEYS:
            _predict(client, key)
        client.post("/predict/batch", json={"instances": [SEED_ROW] * 10, "units": KEYS[:10]})
        metrics = client.get("/metrics").text
    arms = [exp.assign(k)[0] for k in KEYS + KEYS[:10]]
    for arm in ("control", "candidate"):
        line = f'ml_matching_experiment_rows_total{{arm="{arm}",served_by="arm"}} {float(arms.count(arm))}'
        assert line in metrics


def test_keyed_requests_are_served_by_their_arm_while_active_cannot_serve(models: Path) -> None:
    """ACTIVE names a version that fails verification, so nothing serves outside the experiment: a
    keyless request is control's, and a keyed one its arm's (it was a 503: the served version was
    read for every keyed request)."""
    from tests.runtime.corrupt import CORRUPTIONS

    copy_version(models, GB_VERSION, "20260105_000000")
    CORRUPTIONS["hash-mismatch"][0](models / "20260105_000000")
    (models / "ACTIVE").write_text("20260105_000000\n")
    (models / "ACTIVE.log").unlink(missing_ok=True)  # no earlier version to fall back on
    with _client(models, experiment()) as client:
        assert client.get("/health/ready").status_code == 503
        keyless = client.post("/predict", json=SEED_ROW)
        assert keyless.status_code == 200 and keyless.json()["modelVersion"] == RF_VERSION
        arm, version, _ = experiment().assign("brand-7")
        keyed = _predict(client, "brand-7")
        assert (keyed["arm"], keyed["modelVersion"]) == (arm, version)
