"""The model card: written by fit, pinned in the sidecar, rebuilt the same by `training card`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ml_matching.contract import list_versions
from ml_matching.training import card

Cli = Callable[..., tuple[int, str, str]]
CARD_FILES = {card.CARD_MD, card.CARD_HTML, *card.FIGURES}


@pytest.fixture
def version(fitted_copy: Path) -> Path:
    (name,) = list_versions(fitted_copy)
    return fitted_copy / name


def _sidecar(folder: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((folder / "model.json").read_text())
    return doc


def test_fit_writes_the_card_and_pins_every_file(version: Path) -> None:
    files = _sidecar(version)["files"]
    assert CARD_FILES | {card.EVALUATION, "explain.onnx"} <= set(files)
    for name, info in files.items():
        data = (version / name).read_bytes()
        assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["bytes"] == len(data), name
    assert not [p.name for p in version.iterdir() if p.name.startswith(".")]  # no temporary left
    for name in card.FIGURES:
        assert (version / name).read_bytes().lstrip().startswith(b"<?xml"), name


def test_the_card_says_what_a_reader_needs(version: Path) -> None:
    text = (version / card.CARD_MD).read_text()
    s = _sidecar(version)
    assert text.startswith(f"# Model card: ml-matching {s['version']}")
    for must in (
        "## Intended use",
        "trained on synthetic outcomes (`ml-matching synth --rows 400 --seed 3`): a demonstration",
        "400 rows from `outcomes.json`",
        "`brandFit`",
        "## Calibration",
        "| fold 1 |",
        "## Promotion gate",
    ):
        assert must in text, must
    assert f"{s['metrics']['holdout']['rocAuc']:.4f}" in text
    # The Markdown links its plots as files of the version, so it reads right beside them.
    assert set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)) == set(card.FIGURES)


def test_the_html_page_needs_nothing_from_outside(version: Path) -> None:
    page = (version / card.CARD_HTML).read_text()
    assert page.count('src="data:image/svg+xml;base64,') == len(card.FIGURES)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no CDN, no remote font
    assert "<table>" in page and "<h1>" in page


def test_card_rebuilds_the_same_bytes(version: Path, cli: Cli) -> None:
    store, name = version.parent, version.name
    before = {n: (version / n).read_bytes() for n in CARD_FILES | {"model.json"}}
    code, out, _ = cli("card", name, "--artifacts", store)
    assert code == 0 and "the card is up to date" in out
    (version / "roc.svg").unlink()
    (version / card.CARD_MD).write_text("edited by hand\n")
    code, out, _ = cli("card", name, "--artifacts", store)
    assert code == 0 and "wrote" in out and "card.md" in out and "roc.svg" in out
    assert {n: (version / n).read_bytes() for n in before} == before
    code, out, _ = cli("verify", version)
    assert code == 0 and f"{len(_sidecar(version)['files'])} pinned files verified" in out


def test_verify_checks_the_pinned_files(version: Path, cli: Cli) -> None:
    (version / "roc.svg").write_bytes((version / "roc.svg").read_bytes().replace(b"ROC", b"CRO"))
    code, out, err = cli("verify", version)
    assert code == 1 and out == ""
    assert "files" in err and "roc.svg has sha256" in err and "sidecar expects" in err


def test_card_without_evaluation_says_why(version: Path, cli: Cli) -> None:
    (version / card.EVALUATION).unlink()
    code, out, err = cli("card", version.name, "--artifacts", version.parent)
    assert code != 0 and out == ""
    assert f"{version.name} has no evaluation.json" in err and "retrain" in err


def test_card_refuses_an_evaluation_that_is_not_the_one_pinned(version: Path, cli: Cli) -> None:
    """It redrew the card from edited figures and pinned the result as the version's own (exit 0)."""
    path = version / card.EVALUATION
    path.write_bytes(path.read_bytes().replace(b"0.", b"0.9", 1))
    code, out, err = cli("card", version.name, "--artifacts", version.parent)
    assert (code, out) == (1, "") and "files: evaluation.json has sha256" in err
    path.write_text("{not json")  # as a file cut short would be
    code, _, err = cli("card", version.name, "--artifacts", version.parent)
    assert code == 1 and "evaluation.json" in err and "Traceback" not in err


def test_card_of_a_missing_version(version: Path, cli: Cli) -> None:
    code, _, err = cli("card", "20990101_000000", "--artifacts", version.parent)
    assert code == 1 and "version 20990101_000000 not found" in err
    code, _, err = cli("card", "../etc", "--artifacts", version.parent)
    assert code == 2 and "../etc" in err


def test_a_card_of_observed_data_does_not_call_it_synthetic(
    tmp_path: Path, cli: Cli, synth_body: dict[str, Any], fast_config: Path
) -> None:
    names = list(synth_body["features"][0])
    lines = [",".join([*names, "outcome"])]
    lines += [
        ",".join([*(str(row[n]) for n in names), str(outcome).lower()])
        for row, outcome in zip(synth_body["features"], synth_body["outcomes"], strict=True)
    ]
    data = tmp_path / "collaborations.csv"
    data.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    assert cli("fit", "--data", data, "--artifacts", store, "--config", fast_config)[0] == 0
    (name,) = list_versions(store)
    text = (store / name / card.CARD_MD).read_text()
    assert "synthetic" not in text and "demonstration" not in text
    assert "It was trained on `collaborations.csv`" in text and "400 rows from `collaborations.csv`" in text
    training = _sidecar(store / name)["trainingData"]
    assert (training["source"], training.get("generator")) == ("collaborations.csv", None)
