"""The promotion gate as a command (exit 0 promote, 1 refuse, 2 bad input) and in ``fit --gate``."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ml_matching.contract import read_active
from ml_matching.trainer.store import Outcome, Store
from tests.support import free_port

Cli = Callable[..., tuple[int, str, str]]


def _write(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(json.dumps(body))
    return path


@pytest.fixture
def shuffled(tmp_path: Path, synth_body: dict[str, Any]) -> Path:
    labels = list(synth_body["outcomes"])
    random.Random(0).shuffle(labels)
    return _write(tmp_path / "shuffled.json", {**synth_body, "outcomes": labels})


@pytest.fixture
def store(fitted_copy: Path) -> tuple[Path, str]:
    """A store whose ACTIVE is a model of the clean data."""
    active = read_active(fitted_copy)
    assert active is not None
    return fitted_copy, active


def _fit_json(cli: Cli, *args: Any) -> dict[str, Any]:
    code, out, err = cli("fit", *args, "--json")
    assert code == 0, err
    return dict(json.loads(out))


def test_a_worse_version_is_refused_and_the_better_one_promoted(
    store: tuple[Path, str], cli: Cli, shuffled: Path, fast_config: Path, tmp_path: Path
) -> None:
    root, good = store
    worse = _fit_json(cli, "--data", shuffled, "--artifacts", root, "--config", fast_config, "--no-activate")
    (bad,) = [v["version"] for v in worse["versions"]]
    clean = _write(tmp_path / "clean.json", _clean_rows(tmp_path))
    code, out, _ = cli("gate", bad, "--against", "ACTIVE", "--data", clean, "--artifacts", root)
    assert code == 1 and out.startswith(f"refuse: {bad}: ROC-AUC ")
    code, out, _ = cli("gate", good, "--against", bad, "--data", clean, "--artifacts", root, "--json")
    decision = json.loads(out)
    assert code == 0 and decision["promoted"] is True and decision["champion"] == bad
    assert decision["rows"] == 300 and decision["rowsSource"] == f"rows of {clean}"
    assert read_active(root) == good, "gate decides; it writes nothing"


def _clean_rows(tmp_path: Path) -> dict[str, Any]:
    from ml_matching.contract import default_feature_set
    from ml_matching.training.synth import synthesize

    body = synthesize(300, default_feature_set(), seed=77)
    body.pop("bayes")
    return body


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["20990101_000000"], "20990101_000000: no such version"),
        (["not-a-version"], "no such version"),
    ],
)
def test_bad_input_exits_2(store: tuple[Path, str], cli: Cli, args: list[str], message: str) -> None:
    root, _ = store
    code, _, err = cli("gate", *args, "--artifacts", root, "--data", root / "nothing.json")
    assert code == 2 and message in err


def test_a_champion_named_by_mistake_is_bad_input_not_a_promotion(store: tuple[Path, str], cli: Cli) -> None:
    """`--against` a version the store lacks said "promote … the candidate replaces it", exit 0: in
    CI, a typo promoted anything."""
    root, good = store
    code, out, err = cli("gate", good, "--against", "20990101_000000", "--artifacts", root)
    assert (code, out) == (2, "") and "error: --against: version 20990101_000000 not found in" in err


def test_the_outcome_database_may_be_a_postgresql_url(
    store: tuple[Path, str], cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Path collapsed the URL's `//`: it was looked for as a file, and reported missing."""
    pytest.importorskip("psycopg_pool")
    from ml_matching.trainer import database

    monkeypatch.setattr(database, "CONNECT_SECONDS", 1)
    root, good = store
    port = free_port()  # nothing listens: the error names the server, not a missing file
    code, _, err = cli("gate", good, "--artifacts", root, "--outcomes-db", f"postgresql://127.0.0.1:{port}/x")
    assert code == 1 and f"postgresql://127.0.0.1:{port}/x: no connection within" in err
    assert "refused" in err and len(err.strip().splitlines()) == 1


def test_without_data_the_stores_evaluation_outcomes_are_used(store: tuple[Path, str], cli: Cli) -> None:
    root, good = store
    code, _, err = cli("gate", good, "--artifacts", root)
    assert code == 2 and "no rows to judge on: give --data FILE" in err
    body = _clean_rows(root)
    with Store(root / "outcomes.sqlite") as db:
        rows = zip(body["features"], body["outcomes"], strict=True)
        db.add([Outcome(f"e{i}", f, o) for i, (f, o) in enumerate(rows)], evaluation_share=0.5)
    code, out, _ = cli("gate", good, "--artifacts", root, "--json")
    decision = json.loads(out)
    assert code == 0 and decision["rowsSource"] == "evaluation outcomes" and 100 < decision["rows"] < 200


def test_fit_gate_publishes_a_worse_model_without_activating_it(
    store: tuple[Path, str], cli: Cli, shuffled: Path, fast_config: Path, tmp_path: Path
) -> None:
    root, good = store
    clean = _write(tmp_path / "clean.json", _clean_rows(tmp_path))
    args = ["--artifacts", root, "--config", fast_config, "--gate-data", clean]
    result = _fit_json(cli, "--data", shuffled, *args)
    (version,) = result["versions"]
    assert result["active"] is None and read_active(root) == good
    sidecar = json.loads((root / version["version"] / "model.json").read_text())
    assert sidecar["gate"]["promoted"] is False and sidecar["gate"]["champion"] == good
    assert sidecar["gate"]["rowsSource"] == f"rows of {clean}" and sidecar["gate"]["rows"] == 300
    # Without --gate-data the gate judges on the held-out rows of the fit, and says so.
    more = _write(tmp_path / "more.json", _clean_rows(tmp_path))
    again = _fit_json(cli, "--data", more, "--artifacts", root, "--config", fast_config, "--gate")
    (version,) = again["versions"]
    decision = json.loads((root / version["version"] / "model.json").read_text())["gate"]
    assert decision["rowsSource"] == "held-out rows of this training" and decision["rows"] == 60
    assert again["active"] == (version["version"] if decision["promoted"] else None)


def test_on_its_own_held_out_rows_the_champion_is_judged_by_its_own_held_out_figure(
    store: tuple[Path, str], cli: Cli, data_file: Path, fast_config: Path
) -> None:
    """A retrain on the champion's own data: the new held-out split is mostly rows the champion was
    trained on, where its ROC-AUC is inflated (a forest nearly memorises its training rows). Its
    figure is the held-out ROC-AUC its sidecar recorded instead, and the reason says so."""
    root, champion = store
    args = ["--data", data_file, "--artifacts", root, "--config", fast_config, "--seed", "7", "--gate"]
    (version,) = _fit_json(cli, *args)["versions"]
    decision = json.loads((root / version["version"] / "model.json").read_text())["gate"]
    recorded = json.loads((root / champion / "model.json").read_text())["metrics"]["holdout"]["rocAuc"]
    assert decision["champion"] == champion and decision["championRocAuc"] == recorded
    assert decision["rowsSource"] == "held-out rows of this training"
    assert "the champion on its own held-out rows, as its sidecar records" in decision["reason"]
    # On rows it was given, it is scored on them, as before: here its own training data, on which it
    # looks better than it is (what the held-out split showed too, before).
    _, out, _ = cli("gate", version["version"], "--artifacts", root, "--data", data_file, "--json")
    given = json.loads(out)
    assert given["rowsSource"] == f"rows of {data_file}" and given["championRocAuc"] > recorded + 0.05
