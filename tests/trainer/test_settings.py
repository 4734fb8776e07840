"""The trainer's settings that name other systems: a bad value stops start-up, naming the variable."""

from __future__ import annotations

import pytest

from ml_matching.contract import SettingsError
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
