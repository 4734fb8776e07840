"""``ml-matching`` end to end: synth → fit → verify → list, and every refusal."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ml_matching.contract import list_versions, read_active
from tests.conftest import FIXTURE_STORE, GB_VERSION

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "model.schema.json").read_text())
Cli = Callable[..., tuple[int, str, str]]


def _fit(cli: Cli, data: Path, store: Path, config: Path, *extra: str) -> tuple[int, str, str]:
    return cli("fit", "--data", data, "--artifacts", store, "--config", config, *extra)


def test_end_to_end_synth_fit_verify_list(tmp_path: Path, cli: Cli, fast_config: Path) -> None:
    data, store = tmp_path / "d.json", tmp_path / "store"
    code, out, _ = cli("synth", "--rows", "300", "--seed", "5", "--out", data)
    assert code == 0 and "bayes-optimal on this sample: accuracy=" in out
    body = json.loads(data.read_text())
    assert len(body["features"]) == len(body["outcomes"]) == 300

    code, out, err = _fit(cli, data, store, fast_config, "--model", "all", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [v["algorithm"] for v in result["versions"]] == ["random_forest", "gradient_boosting"]
    assert "fold 3/3" in err and "parity over" in err
    versions = [v["version"] for v in result["versions"]]
    assert list_versions(store) == versions
    best = max(result["versions"], key=lambda v: v["metrics"]["cv"]["rocAuc"])
    assert read_active(store) == best["version"] == result["active"]

    for v in versions:
        code, out, _ = cli("verify", store / v)
        assert code == 0 and out.startswith(f"ok: {v}")
        jsonschema.validate(json.loads((store / v / "model.json").read_text()), SCHEMA)

    code, out, _ = cli("list", "--artifacts", store)
    assert code == 0 and all(v in out for v in versions)
    assert f"* {best['version']}" in out


def test_synth_refuses_a_name_fit_would_read_as_another_format(tmp_path: Path, cli: Cli) -> None:
    """`synth --out d.csv` wrote JSON under a CSV name; `fit` then read its one line as a header of
    thousands of columns, and named them all (400 KB) after 90 s."""
    code, out, err = cli("synth", "--rows", "300", "--out", tmp_path / "d.csv")
    assert code == 2 and out == "" and "--out: synth writes the /train JSON body" in err
    assert "must end in .json, got `.csv`" in err and not (tmp_path / "d.csv").exists()
    code, _, err = cli("synth", "--rows", "100000000000", "--out", tmp_path / "d.json")  # a MemoryError
    assert code == 2 and "--rows must be from 2 to 2,000,000, got 100,000,000,000" in err
    code, _, err = cli("synth", "--rows", "300", "--seed", "-1", "--out", tmp_path / "d.json")
    assert code == 2 and "--seed must be from 0 to 4,294,967,295, got -1" in err


def test_a_config_that_is_neither_toml_nor_json_is_named_so(
    tmp_path: Path, cli: Cli, data_file: Path
) -> None:
    """A YAML file was read as JSON: "cannot read config: Expecting value: line 1 column 1"."""
    config = tmp_path / "c.yaml"
    config.write_text("folds: 3\n")
    code, _, err = cli("fit", "--data", data_file, "--artifacts", tmp_path / "s", "--config", config)
    assert (
        code == 2
        and "c.yaml: a config is TOML (.toml) or JSON (.json), chosen by its suffix; got `.yaml`" in err
    )


@pytest.mark.parametrize(
    ("config", "flags", "words"),
    [
        ({"folds": 3}, ["--folds", "1"], "error: --folds: Expected `int` >= 2 - at `$.folds`"),
        ({}, ["--seed", "4294967296"], "error: --seed: Expected `int` <= 4294967295 - at `$.seed`"),
        ({"seed": -1}, [], "c.json: Expected `int` >= 0 - at `$.seed`"),
        ({"random_forest": {"n_jobs": 0}}, [], "c.json: n_jobs must be -1 (every core) or at least 1, got 0"),
        ({"random_forest": {"max_features": "most"}}, [], "c.json: Invalid enum value 'most'"),
        (
            {"holdout_fraction": 0.001},
            [],
            "holdout_fraction 0.001 of 400 rows holds out 1 and trains on 399: each part needs at least 2",
        ),
    ],
)
def test_settings_scikit_learn_would_refuse_mid_fit_are_refused_first_naming_where(
    tmp_path: Path, cli: Cli, data_file: Path, config: dict[str, Any], flags: list[str], words: str
) -> None:
    """They were tracebacks after the baseline trained; a bad --folds was blamed on the config file."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    code, _, err = cli("fit", "--data", data_file, "--artifacts", tmp_path / "s", "--config", path, *flags)
    assert code == 2 and words in err and "Traceback" not in err, err


def test_list_with_an_active_naming_no_version_still_lists(fitted_copy: Path, cli: Cli) -> None:
    (fitted_copy / "ACTIVE").write_text("garbage\n")
    code, out, err = cli("list", "--artifacts", fitted_copy)
    assert code == 0 and f"{fitted_copy / 'ACTIVE'}: version 'garbage' is not a version name" in err
    assert len(out.splitlines()) == 2 and "* " not in out


def test_sidecar_contents(fitted_copy: Path, data_file: Path) -> None:
    store = fitted_copy  # data_file: the same bytes it was fitted on
    (version,) = list_versions(store)
    s = json.loads((store / version / "model.json").read_text())
    onnx = (store / version / "model.onnx").read_bytes()
    assert s["onnx"]["sha256"] == hashlib.sha256(onnx).hexdigest() and s["onnx"]["bytes"] == len(onnx)
    assert s["onnx"]["inputShape"] == [None, 19] and s["onnx"]["positiveClassIndex"] == 1
    assert s["hyperparameters"]["n_estimators"] == 10 and s["randomSeed"] == 42
    assert len(s["metrics"]["crossValidation"]["perFold"]) == 3
    # 400 rows: 320 to train on, fewer than cv_rows, so the folds were drawn from all of them.
    assert (
        s["metrics"]["crossValidation"]["rows"] == s["baseline"]["metrics"]["crossValidation"]["rows"] == 320
    )
    assert s["parity"]["rows"] >= 1000 + 80 and s["parity"]["maxAbsDiff"] <= 1e-5
    assert len(s["goldenRows"]) >= 8
    stats = s["trainingData"]["features"]["brandFit"]
    assert sum(stats["histogram"]["counts"]) == 400 and len(stats["histogram"]["edges"]) == 11
    assert (
        s["trainingData"]["rows"] == 400
        and s["trainingData"]["sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    )
    assert set(s["featureImportance"]) == {"impurity", "permutation", "permutationStd", "permutationRows"}
    assert s["featureImportance"]["permutationRows"] == 80  # the held-out rows, fewer than importance_rows
    assert set(s["baseline"]["coefficients"]) == set(s["trainingData"]["features"])
    assert {"scikit-learn", "skl2onnx", "onnxruntime", "python"} <= set(s["libraries"])


def test_same_data_seed_and_config_give_identical_onnx(
    tmp_path: Path, data_file: Path, fast_config: Path
) -> None:
    store = tmp_path / "store"
    for hash_seed in ("1", "2"):  # separate processes: nothing may depend on set or dict order
        args = ["fit", "--data", data_file, "--artifacts", store, "--config", fast_config, "--model", "all"]
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-m", "ml_matching.training", *map(str, args)], env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr
    rf1, gb1, rf2, gb2 = list_versions(store)
    for first, second in ((rf1, rf2), (gb1, gb2)):
        assert (store / first / "model.onnx").read_bytes() == (store / second / "model.onnx").read_bytes()


def test_no_activate_leaves_active(tmp_path: Path, cli: Cli, data_file: Path, fast_config: Path) -> None:
    store = tmp_path / "store"
    assert _fit(cli, data_file, store, fast_config)[0] == 0
    first = read_active(store)
    assert _fit(cli, data_file, store, fast_config, "--no-activate")[0] == 0
    assert len(list_versions(store)) == 2 and read_active(store) == first
    code, _, err = _fit(cli, data_file, store, fast_config, "--no-activate", "--gate")
    assert code == 0 and read_active(store) == first
    assert "gate: promote (not activated: --no-activate): " in err, "a promotion nobody made was logged"


@pytest.mark.parametrize("value", ["inf", "nan", "1", "-0.1", "x"])
def test_a_gate_tolerance_outside_0_to_1_is_refused(
    tmp_path: Path, cli: Cli, data_file: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON writes a non-finite tolerance as null: the version published would be unreadable."""
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        cli("fit", "--data", data_file, "--artifacts", tmp_path / "store", "--gate", "--tolerance", value)
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and "argument --tolerance:" in err and out == ""
    assert not (tmp_path / "store").exists()


def test_an_infinite_parity_tolerance_is_refused(tmp_path: Path, cli: Cli, data_file: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("parity_tolerance = inf\n")
    code, out, err = _fit(cli, data_file, tmp_path / "store", path)
    assert code == 2 and "Expected `float` < 1.0 - at `$.parity_tolerance`" in err and out == ""
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"random_forest": {"n_trees": 5}}, "unknown field `n_trees` - at `$.random_forest`"),
        ({"folds": 1}, "Expected `int` >= 2 - at `$.folds`"),
        ({"seeds": 1}, "unknown field `seeds`"),
    ],
)
def test_bad_config_is_named_and_writes_nothing(
    tmp_path: Path, cli: Cli, data_file: Path, config: Any, message: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    code, out, err = _fit(cli, data_file, tmp_path / "store", path)
    assert code == 2 and message in err and out == ""
    assert not (tmp_path / "store").exists()


def test_toml_config(tmp_path: Path, cli: Cli, data_file: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("folds = 2\n[random_forest]\nn_estimators = 3\nmax_depth = 2\nn_jobs = 1\n")
    code, out, _ = _fit(cli, data_file, tmp_path / "store", path, "--json")
    assert code == 0
    version = json.loads(out)["versions"][0]["version"]
    sidecar = json.loads((tmp_path / "store" / version / "model.json").read_text())
    assert (
        sidecar["hyperparameters"]["n_estimators"] == 3
        and sidecar["metrics"]["crossValidation"]["folds"] == 2
    )


def _rewrite(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    body = json.loads(path.read_text())
    result = change(body)  # either edits body in place or returns a new body
    path.write_text(json.dumps(result if isinstance(result, dict) else body))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["features"][9].pop("audienceMatch"), "row 10: missing feature `audienceMatch`"),
        (lambda b: b["features"][0].update(extra=1), "row 1: unknown feature `extra`"),
        (lambda b: b["features"][2].update(brandFit="x"), "row 3, feature `brandFit`: expected a number"),
        (
            lambda b: b["features"][2].update(brandFit=7),
            "row 3, feature `brandFit`: value 7 is outside [0, 1]",
        ),
        (
            lambda b: b["outcomes"].__setitem__(0, "yes please"),
            'row 1: outcome must be true/false, 1/0 or "yes"/"no"',
        ),
        (
            lambda b: {"features": b["features"], "outcomes": [False] * len(b["outcomes"])},
            "only one class present",
        ),
        (
            lambda b: {"features": b["features"][:20], "outcomes": b["outcomes"][:20]},
            "training needs at least 50",
        ),
    ],
)
def test_bad_data_exits_2_naming_the_problem_and_writes_nothing(
    tmp_path: Path, cli: Cli, data_file: Path, fast_config: Path, change: Any, message: str
) -> None:
    _rewrite(data_file, change)
    code, out, err = _fit(cli, data_file, tmp_path / "store", fast_config)
    assert code == 2 and message in err and out == ""
    assert len(err.strip().splitlines()) == 1 and str(data_file) in err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("successes", [1, 3])
def test_too_few_of_one_outcome_for_the_folds_is_refused_and_writes_nothing(
    tmp_path: Path, cli: Cli, data_file: Path, fast_config: Path, successes: int
) -> None:
    # Three successes for three folds and a held-out part: one of them would have none, its ROC-AUC
    # undefined, and the version's sidecar unreadable (schemathesis found this through POST /train).
    # One success: the stratified split itself raised, a traceback and exit 1.
    trues = iter(range(successes))
    _rewrite(
        data_file,
        lambda b: {**b, "outcomes": [bool(o) and next(trues, None) is not None for o in b["outcomes"]]},
    )
    code, out, err = _fit(cli, data_file, tmp_path / "store", fast_config)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    outcomes = "outcome is" if successes == 1 else "outcomes are"
    assert f"{successes} true {outcomes} too few: each of the 3 cross-validation folds needs one" in err
    assert not (tmp_path / "store").exists()


def test_unreadable_file_exits_2(tmp_path: Path, cli: Cli, fast_config: Path) -> None:
    code, _, err = _fit(cli, tmp_path / "nope.csv", tmp_path / "store", fast_config)
    assert code == 2 and "nope.csv: cannot read" in err


def test_verify_refuses_a_tampered_version(tmp_path: Path, cli: Cli, fitted_copy: Path) -> None:
    store = fitted_copy
    (version,) = list_versions(store)
    onnx = store / version / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[100] ^= 1
    onnx.write_bytes(bytes(data))
    code, _, err = cli("verify", store / version)
    assert code == 1 and "sha256" in err
    assert cli("verify", tmp_path)[0] == 1  # a folder, but no version
    code, _, err = cli("verify", tmp_path / "nope")
    assert code == 2 and "nope: no such folder" in err


def test_module_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ml_matching.training", "list", "--artifacts", tmp_path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "no versions" in done.stdout


def test_every_recorded_flag_is_printed_as_a_warning(
    tmp_path: Path, cli: Cli, synth_body: dict[str, Any], fast_config: Path
) -> None:
    # Outcomes that ignore the features: a forest learns the noise, so its train-vs-CV gap is flagged.
    rng = random.Random(1)
    noise = tmp_path / "noise.json"
    noise.write_text(
        json.dumps({**synth_body, "outcomes": [rng.random() < 0.5 for _ in synth_body["outcomes"]]})
    )
    code, out, err = _fit(cli, noise, tmp_path / "store", fast_config, "--model", "all", "--json")
    assert code == 0, err
    versions = json.loads(out)["versions"]
    flagged = [(v, w) for v in versions for w in v["warnings"]]
    assert any(w.startswith("overfitting: ") for _, w in flagged)
    for v, w in flagged:
        assert f"warning: {v['version']} ({v['algorithm']}): {w}" in err.splitlines()
    sidecar = json.loads((tmp_path / "store" / versions[0]["version"] / "model.json").read_text())
    assert sidecar["warnings"] == versions[0]["warnings"]
    assert sidecar["metrics"]["overfitting"]["flagged"] == any(
        w.startswith("overfitting") for w in sidecar["warnings"]
    )


def test_fit_help_describes_each_option_with_its_default(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        cli("fit", "--help")
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "the format is chosen by suffix: .json (the original service's /train body), .jsonl (JSON Lines)"
        in text
    )
    assert 'an outcome is true/false, 1/0 or "yes"/"no"' in text
    assert "what to train (default: random_forest)" in text and "(default: artifacts)" in text
    assert "cross-validation folds (default: 5, or the config's)" in text


def test_list_shows_every_version_when_one_sidecar_is_unreadable(tmp_path: Path, cli: Cli) -> None:
    store = tmp_path / "store"
    shutil.copytree(FIXTURE_STORE, store)
    (store / GB_VERSION / "model.json").write_text("{}")
    code, out, _ = cli("list", "--artifacts", store)
    lines = out.splitlines()[1:]
    assert code == 1 and len(lines) == len(list_versions(FIXTURE_STORE))
    (bad,) = [line for line in lines if GB_VERSION in line]
    assert "unreadable: sidecar: model.json is unreadable or incomplete" in bad
    assert sum("random_forest" in line for line in lines) >= 1


def test_list_and_verify_name_a_mistyped_path_instead_of_misreading_it(tmp_path: Path, cli: Cli) -> None:
    """A missing store was listed as an empty one (exit 0); a store given to verify was called a
    version without a sidecar (exit 1), and a file "no such folder"."""
    afile = tmp_path / "afile"
    afile.write_text("")
    code, out, err = cli("list", "--artifacts", tmp_path / "nothere")
    assert (code, out) == (2, "") and "--artifacts" in err and "nothere: no such folder" in err
    assert cli("list", "--artifacts", afile)[2].endswith("afile: a file, not a folder\n")
    code, _, err = cli("verify", FIXTURE_STORE)
    assert code == 2 and f"{FIXTURE_STORE} is a store, not a version: give one of its version folders" in err
    assert cli("verify", afile)[:3:2] == (2, f"error: {afile}: a file, not a folder (give a version folder, "
                                             "e.g. artifacts/20261126_143000)\n")  # fmt: skip


def test_fit_refuses_a_store_it_cannot_write_before_training(
    tmp_path: Path, cli: Cli, data_file: Path
) -> None:
    """It trained for the whole run, then failed to publish: "cannot write version …: File exists"."""
    afile = tmp_path / "afile"
    afile.write_text("")
    code, out, err = cli("fit", "--data", data_file, "--artifacts", afile / "store")
    assert (code, out) == (2, "") and f"cannot write there ({afile} is a file, not a folder)" in err
    assert len(err.splitlines()) == 1, "refused before training (no fold lines)"
