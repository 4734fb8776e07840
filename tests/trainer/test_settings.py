"""The trainer's settings that name other systems: a bad value stops start-up, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_matching.contract import SettingsError
from ml_matching.runtime.settings import Settings
from ml_matching.trainer import TrainerSettings


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("DASK_SCHEDULER_ADDRESS", "carrier-pigeon://x:1", "expected a scheme among tcp"),
        ("DASK_SCHEDULER_ADDRESS", "tcp://:8786", "expected a Dask scheduler address"),
        ("EXPERIMENT_RAMP", "0:60:10,banana", "`banana` is not a number"),
        ("EXPERIMENT_RAMP", "20000", "<= 10000"),
        # Checked whole, or the first promotion into an experiment failed, with only a log line:
        ("EXPERIMENT_RAMP", "0", "the last ramp step must serve the candidate"),
        ("EXPERIMENT_RAMP", "5000,1000", "ramp weights must not go down"),
        ("EXPERIMENT_RAMP", "inf", "`inf` is not a finite number"),  # an OverflowError traceback
        ("EXPERIMENT_RAMP", "1000.9", "weight 1000.9 is not a whole number"),  # was cut to 1000
        ("EXPERIMENT_PRIMARY", "accuracy", "metric `accuracy` is not one of logLoss, brier, successRate"),
        ("PROMOTION", "yolo", "gate"),
        # Every training failed (a manual one with a 500) while the trainer answered ready:
        ("TRAIN_CONFIG", "/nonexistent/train.toml", "cannot read config"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=name) as caught:
        TrainerSettings.from_environ({name: value})
    assert words in str(caught.value)


def test_the_trainer_takes_a_dask_scheduler() -> None:
    settings = TrainerSettings.from_environ({"DASK_SCHEDULER_ADDRESS": "tcp://scheduler:8786"})
    assert settings.dask_scheduler == "tcp://scheduler:8786"


def test_an_admin_token_no_header_can_carry_stops_start_up_without_showing_it() -> None:
    """A service reads a header's bytes as Latin-1: a non-ASCII token could never match, and every
    admin call answered 401. The error must not print the secret."""
    with pytest.raises(SettingsError, match="printable ASCII") as caught:
        TrainerSettings.from_environ({"ML_SERVICE_ADMIN_TOKEN": "sécret-tøken"})
    assert "tøken" not in str(caught.value) and "not shown" in str(caught.value)
    assert TrainerSettings.from_environ({"ML_SERVICE_ADMIN_TOKEN": "tok\n"}).admin_token == "tok"


def test_the_experiment_command_strips_the_token_and_never_prints_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A token mounted from a file ends in a line break: the command sent it as is, failed, and
    printed it in an error blaming the trainer's address."""
    from ml_matching.cli import main

    for value, words in (("s3cr3t\n", "cannot reach the trainer"), ("s3cr3tø", "printable ASCII")):
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ML_SERVICE_ADMIN_TOKEN", value)
            assert main(["experiment", "--trainer", "http://127.0.0.1:9", "pause", "exp-1"]) != 0
        err = capsys.readouterr().err
        assert words in err and value.strip() not in err


def test_a_store_that_is_a_file_stops_start_up(tmp_path: Path) -> None:
    """A traceback from inside the server's start-up (FileExistsError); the runtime refuses a file
    too. (A read-only store: tests/reliability/test_faults.py, which can mount one.)"""
    afile = tmp_path / "afile"
    afile.write_text("")
    for settings in (TrainerSettings, Settings):
        with pytest.raises(SettingsError, match=r"MODELS_DIR=.*: a file, not a folder"):
            settings.from_environ({"MODELS_DIR": str(afile)})


@pytest.mark.parametrize("command", ["experiment", "holdout"])
def test_a_trainer_address_that_is_not_a_url_is_refused_naming_it(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """urllib's "unknown url type" was a traceback."""
    from ml_matching.cli import main

    with pytest.raises(SystemExit) as exited:
        main([command, "--trainer", "notaurl", "list"])
    assert exited.value.code == 2
    assert "--trainer: expected the trainer's http(s) URL" in capsys.readouterr().err
    monkeypatch.setenv("ML_TRAINER_URL", "localhost:8001")  # no scheme: the variable, checked alike
    with pytest.raises(SystemExit):
        main([command, "list"])
    assert "(--trainer, else ML_TRAINER_URL)" in capsys.readouterr().err


def test_a_file_that_is_not_an_outcome_database_is_named(tmp_path: Path) -> None:
    """sqlite's "file is not a database" was a traceback (gate --outcomes-db, the trainer)."""
    from ml_matching.contract import MLMatchingError
    from ml_matching.trainer.store import Store

    junk = tmp_path / "junk.sqlite"
    junk.write_text("junk " * 100)
    with pytest.raises(
        MLMatchingError, match=r"junk.sqlite: not an outcome database \(file is not a database\)"
    ):
        Store(junk)
