"""The public surface of each room is pinned: adding or removing a name is a visible change."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

ROOMS = ["ml_matching.contract", "ml_matching.http", "ml_matching.runtime"]
TRAIN_ROOMS = ["ml_matching.training", "ml_matching.trainer"]


def _public_names(module: types.ModuleType) -> set[str]:
    """Names a user can reach in ``module`` that are not submodules or ``__future__`` imports."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }


@pytest.mark.parametrize("name", ROOMS)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    # httpx's tests/test_exported_members.py: nothing public is missing from __all__, nothing extra is in it.
    # (Its order is ruff's RUF022 sort, checked by the lint session.)
    module = importlib.import_module(name)
    assert len(module.__all__) == len(set(module.__all__))
    assert set(module.__all__) == _public_names(module)


@pytest.mark.train
def test_trainer_surface_is_lazy_but_complete() -> None:
    trainer = importlib.import_module("ml_matching.trainer")
    assert sorted(trainer.__all__) == ["Trainer", "TrainerSettings", "create_app"]
    for name in trainer.__all__:
        assert getattr(trainer, name).__module__.startswith("ml_matching.trainer.")


@pytest.mark.train
def test_training_surface_is_lazy_but_complete() -> None:
    training = importlib.import_module("ml_matching.training")
    assert sorted(training.__all__) == [
        "Candidate", "Dataset", "FitResult", "TrainConfig", "fit_and_publish", "load_config", "load_dataset",
        "publish", "synthesize", "train_candidates",
    ]  # fmt: skip
    for name in training.__all__:
        assert getattr(training, name).__module__.startswith("ml_matching.training.")


def test_runtime_surface() -> None:
    runtime = importlib.import_module("ml_matching.runtime")
    assert sorted(runtime.__all__) == [
        "ActiveWatch", "ModelNotFound", "ModelService", "NotExplainable", "Scorer", "Settings",
        "VersionNotLoaded", "create_app",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import ml_matching", {"ml_matching.contract", "ml_matching.runtime", "ml_matching.training"}),
        ("import ml_matching.contract", {"litestar", "ml_matching.http", "sklearn"}),
        ("import ml_matching.training.commands", {"sklearn", "skl2onnx", "matplotlib"}),
        ("import ml_matching.runtime", {"sklearn", "ml_matching.training", "ml_matching.trainer"}),
    ],
)
def test_importing_a_room_loads_only_what_it_needs(statement: str, absent: set[str]) -> None:
    code = f"import sys; {statement}; print(sorted(m for m in {sorted(absent)!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
