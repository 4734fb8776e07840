"""What the trainer's web process loads at start: the service, not the training side. Its jobs
train in worker processes; importing scikit-learn, skl2onnx and matplotlib at start cost it 1.4 s of
CPU and 180 MB it kept for its whole life."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ml_matching.training import EXTRA_PACKAGES
from tests.trainer.conftest import trainer_service

MAPS = Path("/proc/self/maps")
# Packages whose import maps compiled libraries of their own into the process (skl2onnx imports
# sklearn and onnx). SciPy is left out: the experiments' statistics (trainer/sequential.py) use it.
COMPILED = ("sklearn", "matplotlib", "onnx")


@pytest.mark.skipif(not MAPS.exists(), reason="reads the process's memory map in /proc (Linux)")
def test_the_trainer_starts_without_the_training_libraries(tmp_path: Path) -> None:
    config = tmp_path / "train.json"
    config.write_text("{}")
    trainer = trainer_service(tmp_path / "store", config).start()  # `ml-matching trainer`, as served
    try:
        assert trainer.proc is not None
        mapped = Path(f"/proc/{trainer.proc.pid}/maps").read_text()
    finally:
        trainer.stop()
    loaded = [p for p in COMPILED if f"/site-packages/{p}/" in mapped]
    assert loaded == [], f"the trainer's web process loaded {loaded} at start"
    assert "/site-packages/numpy/" in mapped  # what it does load shows in the map


def test_the_extra_check_names_every_package_of_the_train_extra() -> None:
    """require_extra looks packages up by import name; each distribution of pyproject.toml's
    `train` extra must provide one of them, or a missing one goes unnoticed until it is used."""
    extra = [Requirement(r) for r in importlib.metadata.requires("ml-matching") or ()]
    train = {r.name for r in extra if r.marker and _only_with(r, "train")}
    provides = importlib.metadata.packages_distributions()
    named = {dist.lower() for module in EXTRA_PACKAGES for dist in provides.get(module, ())}
    assert train and {d.lower() for d in train} <= named, sorted(train)


def _only_with(requirement: Requirement, extra: str) -> bool:
    """Whether ``requirement`` is installed with ``extra`` and not without it (not uvloop's platform rule)."""
    marker = requirement.marker
    assert marker is not None
    return marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""})
