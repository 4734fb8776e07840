"""Offline training for ml-matching: load outcomes, fit, cross-validate, export ONNX, publish a version.

Needs the ``train`` extra: ``pip install -e '.[train]'`` in a checkout (or the wheel that
``nox -s dist`` builds, with ``[train]``).
"""

from __future__ import annotations

try:
    import joblib  # noqa: F401  (imported only to prove the extra is installed)
    import onnx  # noqa: F401
    import skl2onnx  # noqa: F401
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in the runtime-only environment
    raise ImportError(
        f"training needs the `train` extra ({exc.name} is missing): in a checkout of ml-matching run "
        "`pip install -e '.[train]'`, or install the wheel built by `nox -s dist` with `[train]` "
        "(`pip install 'dist/ml_matching-<version>-py3-none-any.whl[train]'`)"
    ) from exc

from training.config import TrainConfig, load_config
from training.data import Dataset, load_dataset
from training.pipeline import Candidate, FitResult, fit_and_publish, publish, train_candidates
from training.synth import synthesize

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
