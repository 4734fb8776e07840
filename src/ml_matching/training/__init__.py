"""Offline training: load outcomes, fit, cross-validate, calibrate, explain, export ONNX behind a
parity gate, publish a version with its model card.

Needs the ``train`` extra (scikit-learn, skl2onnx, ...): ``pip install 'ml-matching[train]'``, or
``uv sync --extra train`` in a checkout. The names below are imported when first used, so the
command line can list and explain its commands in an install without the extra, and a missing
extra is reported with the command that installs it.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from ml_matching.contract.errors import MissingDependency

INSTALL_HINT = (
    "training needs the `train` extra ({missing} is missing): `pip install 'ml-matching[train]'`, "
    "or `uv sync --extra train` in a checkout of ml-matching"
)
#: The import names of the `train` extra's packages (pyproject.toml).
EXTRA_PACKAGES = ("sklearn", "scipy", "skl2onnx", "onnx", "joblib", "matplotlib", "markdown_it")
_EXPORTS = {
    "Candidate": "pipeline",
    "Dataset": "data",
    "FitResult": "pipeline",
    "TrainConfig": "config",
    "fit_and_publish": "pipeline",
    "load_config": "config",
    "load_dataset": "data",
    "publish": "pipeline",
    "synthesize": "synth",
    "train_candidates": "pipeline",
}

__all__ = [
    "Candidate",
    "Dataset",
    "FitResult",
    "TrainConfig",
    "fit_and_publish",
    "load_config",
    "load_dataset",
    "publish",
    "synthesize",
    "train_candidates",
]

if TYPE_CHECKING:
    from ml_matching.training.config import TrainConfig, load_config
    from ml_matching.training.data import Dataset, load_dataset
    from ml_matching.training.pipeline import (
        Candidate,
        FitResult,
        fit_and_publish,
        publish,
        train_candidates,
    )
    from ml_matching.training.synth import synthesize


def require_extra() -> None:
    """Raise :class:`MissingDependency` (an ImportError) naming the install command when the
    ``train`` extra is missing.

    The packages are looked up, not imported: importing them cost the trainer's web process (it
    checks at start, and trains only in worker processes) 1.4 s of CPU and 180 MB, and a command
    imports what it uses anyway. An install that is present but broken (a compiled library that
    does not load) is so found by the first import that needs it, not here."""
    for module in EXTRA_PACKAGES:
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(INSTALL_HINT.format(missing=module))


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_extra()
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
