"""Training settings a CI pipeline may set from a TOML or JSON file (unknown keys are rejected)."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from ml_matching.contract import InvalidInput
from ml_matching.contract.commandline import suffix_shown

Fraction = Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
Calibrate = Literal["auto", "none", "sigmoid", "isotonic"]
CALIBRATIONS: tuple[str, ...] = Calibrate.__args__  # type: ignore[attr-defined]
Positive = Annotated[int, msgspec.Meta(ge=1)]
#: What numpy's random state takes (scikit-learn refused others mid-fit, with a traceback).
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
#: scikit-learn's: "sqrt", "log2", a share of the features, a count of them, or all (None).
MaxFeatures = (
    Literal["sqrt", "log2"]
    | Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
    | Annotated[int, msgspec.Meta(ge=1)]
    | None
)
#: ROC-AUC a candidate may trail its champion by and still be promoted (``gate``, ``fit --gate``).
DEFAULT_TOLERANCE = 0.01


def gate_tolerance(text: str) -> float:
    """``--tolerance`` (an argparse type): the ROC-AUC a candidate may trail by, from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value < 1:  # NaN and infinities too
        raise argparse.ArgumentTypeError(f"must be from 0 to 1 (less than 1), got {text}")
    return value


class RandomForestParams(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The original service's RandomForest: 100 trees, depth 10, min 5 samples per split, every core."""

    n_estimators: Positive = 100
    max_depth: Positive | None = 10
    min_samples_split: Annotated[int, msgspec.Meta(ge=2)] = 5
    min_samples_leaf: Positive = 1
    max_features: MaxFeatures = "sqrt"
    #: Processes fitting trees: -1 every core, else at least 1 (0 means nothing to scikit-learn).
    n_jobs: int = -1

    def __post_init__(self) -> None:  # msgspec answers its ValueError as a ValidationError
        if self.n_jobs == 0 or self.n_jobs < -1:
            raise ValueError(f"n_jobs must be -1 (every core) or at least 1, got {self.n_jobs}")


class GradientBoostingParams(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The original service's GradientBoosting: 100 stages, learning rate 0.1, depth 5."""

    n_estimators: Positive = 100
    learning_rate: Annotated[float, msgspec.Meta(gt=0.0)] = 0.1
    max_depth: Positive = 5
    subsample: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 1.0


class TrainConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Everything ``fit`` needs besides the data. Command-line flags override the file."""

    folds: Annotated[int, msgspec.Meta(ge=2, le=20)] = 5
    seed: Seed = 42
    holdout_fraction: Fraction = 0.2
    decision_threshold: Fraction = 0.5
    overfitting_threshold: Fraction = 0.10
    parity_tolerance: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 1e-5
    parity_random_rows: Annotated[int, msgspec.Meta(ge=1000)] = 2000
    golden_rows: Annotated[int, msgspec.Meta(ge=8, le=1000)] = 16
    #: Cross-validation runs on a stratified sample of this many training rows (0: all of them;
    #: each outcome keeps at least training.rows.MIN_PER_OUTCOME); the final model is still fitted
    #: on every training row. At 100k rows, 5 folds of gradient boosting on all 80k were three
    #: quarters of ``fit --model all``, and a 20k sample moved the folds' mean ROC-AUC by -0.005 and
    #: kept the calibration (docs/guides/training.md, "Training at scale").
    cv_rows: Annotated[int, msgspec.Meta(ge=0)] = 20_000
    #: Permutation importance is measured on a stratified sample of this many held-out rows (0: all).
    importance_rows: Annotated[int, msgspec.Meta(ge=0)] = 5_000
    #: none, sigmoid, isotonic, or auto: sigmoid when it beats none's cross-validated Brier score by
    #: more than the folds' noise (training.calibration.choose), else none.
    calibrate: Calibrate = "auto"
    random_forest: RandomForestParams = RandomForestParams()
    gradient_boosting: GradientBoostingParams = GradientBoostingParams()


def load_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """Read a TOML or JSON config (by suffix), apply non-None ``overrides``, validate.

    Raises
    ------
    InvalidInput
        Unreadable file, unknown key (named), or a value of the wrong type or range.
    """
    raw: dict[str, Any] = _read(Path(path)) if path is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    if path is not None:  # the file alone first: a bad --folds is not the file's fault
        _convert(raw, str(path))
    flags = " ".join(f"--{k.replace('_', '-')}" for k in given) or "options"
    return _convert({**raw, **given}, flags)


def _convert(raw: dict[str, Any], where: str) -> TrainConfig:
    try:
        return msgspec.convert(raw, TrainConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def _read(path: Path) -> dict[str, Any]:
    if path.suffix.lower() not in (".toml", ".json"):  # a YAML file was "Expecting value: line 1"
        got = suffix_shown(path)
        raise InvalidInput(
            f"{path}: a config is TOML (.toml) or JSON (.json), chosen by its suffix; got {got}"
        )
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot read config: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: config must be an object/table")
    return data
