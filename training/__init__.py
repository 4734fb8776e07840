"""Offline training for ml-matching: load outcomes, fit, cross-validate, export ONNX, publish a version.

Needs the ``train`` extra: ``pip install 'ml-matching[train]'``.
"""

from __future__ import annotations

try:
    import joblib  # noqa: F401  (imported only to prove the extra is installed)
    import onnx  # noqa: F401
    import skl2onnx  # noqa: F401
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in the runtime-only environment
    raise ImportError(
        f"training needs the `train` extra ({exc.name} is missing): pip install 'ml-matching[train]'"
    ) from exc

from training.config import TrainConfig, load_config
from training.data import Dataset, load_dataset
from training.pipeline import FitResult, fit_and_publish
from training.synth import synthesize

__all__ = [
    "Dataset",
    "FitResult",
    "TrainConfig",
    "fit_and_publish",
    "load_config",
    "load_dataset",
    "synthesize",
]
