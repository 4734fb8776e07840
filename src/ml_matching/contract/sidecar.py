"""The sidecar (``model.json``): everything known about one exported model.

These Structs are the single definition of the sidecar: training encodes them, the runtime decodes
them, and ``schemas/model.schema.json`` is generated from them (a test keeps the file in sync).
Field names are camelCase on the wire.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ml_matching.contract.errors import ArtifactCorrupt
from ml_matching.contract.features import Feature

SCHEMA_VERSION = 1
#: The model kinds ml-matching trains: ``fit --model``, ``MODEL_TYPE`` and the sidecar's ``algorithm``.
ALGORITHMS = ("random_forest", "gradient_boosting")


class _Camel(msgspec.Struct, rename="camel", frozen=True):
    pass


class Metrics(_Camel, frozen=True):
    """Classification metrics at the decision threshold, plus probabilistic scores."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    log_loss: float
    brier: float


class CrossValidation(_Camel, frozen=True):
    """Stratified k-fold results: one Metrics per fold, their mean and standard deviation.

    ``rows``: the training rows the folds were drawn from, a stratified sample when the training
    part had more than the config's ``cv_rows`` (None: written before it was recorded, all of them).
    """

    folds: int
    per_fold: tuple[Metrics, ...]
    mean: Metrics
    std: Metrics
    rows: int | None = None


class Overfitting(_Camel, frozen=True):
    """Train-vs-CV gap on ``metric``; ``flagged`` when the gap exceeds ``threshold``."""

    metric: str
    train: float
    cv: float
    gap: float
    threshold: float
    flagged: bool


class ModelMetrics(_Camel, frozen=True):
    cross_validation: CrossValidation
    holdout: Metrics
    holdout_fraction: float
    train: Metrics
    overfitting: Overfitting


class OnnxInfo(_Camel, frozen=True):
    """How to call model.onnx, and the hash that pins its bytes.

    ``label_output`` is the converter's label: the class of highest probability, a cut at 0.5
    whatever the version's ``decision_threshold``. This project's services and clients label by the
    threshold on ``probabilities_output``; any other server of the raw ONNX should do the same."""

    file: str
    sha256: str
    bytes: int
    opset: int
    ml_opset: int
    input_name: str
    input_dtype: str
    input_shape: tuple[int | None, ...]
    label_output: str
    probabilities_output: str
    classes: tuple[int, ...]
    positive_class_index: int


class Importance(_Camel, frozen=True):
    """Global (whole-model) importances; permutation ones measured on the held-out split, or on
    ``permutation_rows`` of it (a stratified sample; None: written before it was recorded, all)."""

    impurity: dict[str, float]
    permutation: dict[str, float]
    permutation_std: dict[str, float]
    permutation_rows: int | None = None


class BaselineMetrics(_Camel, frozen=True):
    cross_validation: CrossValidation
    holdout: Metrics


class Baseline(_Camel, frozen=True):
    """Logistic regression on the raw features: p = sigmoid(intercept + sum(coef * x))."""

    algorithm: str
    intercept: float
    coefficients: dict[str, float]
    metrics: BaselineMetrics


class Parity(_Camel, frozen=True):
    """scikit-learn vs onnxruntime on the same float32 rows."""

    rows: int
    max_abs_diff: float
    tolerance: float
    onnxruntime_version: str


class GoldenRow(_Camel, frozen=True):
    """An input with the probability scikit-learn gave it, for checks in any runtime."""

    features: dict[str, float]
    probability: float
    baseline_probability: float


class Histogram(_Camel, frozen=True):
    edges: tuple[float, ...]
    counts: tuple[int, ...]


class FeatureStats(_Camel, frozen=True):
    min: float
    max: float
    mean: float
    histogram: Histogram


class TrainingData(_Camel, frozen=True):
    """What the model learned from: ``source`` (a file name, ``POST /train body``, the stored
    outcomes), and ``generator`` when the rows were drawn by a generator rather than observed."""

    rows: int
    positive_rate: float
    sha256: str
    features: dict[str, FeatureStats]
    source: str = ""
    generator: str | None = None


class FileInfo(_Camel, frozen=True):
    """A file of the version besides model.onnx and model.json, pinned by its hash."""

    sha256: str
    bytes: int
    media_type: str


class GateDecision(_Camel, frozen=True):
    """Champion / challenger: why this version was (or was not) made ``ACTIVE`` when it was trained.

    Promoted when the candidate's ROC-AUC is at least the champion's minus ``tolerance`` on the same
    ``rows`` (``rows_source`` says which), and its parity gate passed. When those rows are the
    training's own held-out split (which the champion may have learned from), the champion's figure
    is instead the held-out ROC-AUC of its own sidecar, and ``reason`` says so. ``warnings`` notes
    what does not refuse by itself, e.g. the candidate's own logistic baseline scoring better on
    those rows.
    """

    promoted: bool
    reason: str
    champion: str | None
    candidate_roc_auc: float
    champion_roc_auc: float | None
    baseline_roc_auc: float
    rows: int
    positives: int
    rows_source: str
    tolerance: float
    parity_max_abs_diff: float
    warnings: tuple[str, ...] = ()


class CalibrationFigures(_Camel, frozen=True):
    brier: float
    log_loss: float
    ece: float


class Calibration(_Camel, frozen=True):
    """How the probabilities were calibrated (``method``: none, sigmoid or isotonic) and why.

    ``cv_brier`` holds the Brier score of the out-of-fold predictions under each method;
    ``holdout_before``/``holdout_after`` the held-out figures without and with calibration (the
    expected calibration error over ``bins`` equal-width bins).
    """

    method: str
    chosen_by: str
    cv_brier: dict[str, float]
    bins: int
    holdout_before: CalibrationFigures
    holdout_after: CalibrationFigures


class ExplanationParity(_Camel, frozen=True):
    """The explainer graph against a direct computation from the fitted trees (``max_abs_diff``),
    and ``base_value + Σ contributions`` against the model's output in the explained scale
    (``sum_max_abs_diff``), on the same ``rows``."""

    rows: int
    max_abs_diff: float
    sum_max_abs_diff: float
    tolerance: float


class Explanation(_Camel, frozen=True):
    """Per-prediction explanations: ``file`` (an ONNX graph beside model.onnx, pinned in ``files``)
    maps the model's input to ``output`` ``[N, features]``, each feature's contribution, in feature
    order; ``base_value`` plus their sum is the model's output for the row in ``scale``.

    ``golden_contributions`` holds the contributions of each golden row, for checks in any runtime.
    """

    file: str
    method: str
    scale: str
    base_value: float
    output: str
    parity: ExplanationParity
    golden_contributions: tuple[tuple[float, ...], ...]


class Sidecar(_Camel, frozen=True):
    """The whole of ``model.json``.

    ``warnings`` holds one line per flag training recorded (overfitting, a baseline that beats the
    model, ...); ``files`` the version's other files; ``gate`` the promotion decision, when one was
    made; ``calibration`` and ``explanation`` what was done to the probabilities and how to explain
    them. They have defaults, so sidecars written before they existed still load.
    """

    schema_version: int
    version: str
    created_at: str
    algorithm: str
    hyperparameters: dict[str, Any]
    random_seed: int
    features: tuple[Feature, ...]
    onnx: OnnxInfo
    decision_threshold: float
    metrics: ModelMetrics
    feature_importance: Importance
    baseline: Baseline
    parity: Parity
    golden_rows: tuple[GoldenRow, ...]
    training_data: TrainingData
    libraries: dict[str, str]
    warnings: tuple[str, ...] = ()
    files: dict[str, FileInfo] = {}
    gate: GateDecision | None = None
    calibration: Calibration | None = None
    explanation: Explanation | None = None


_decoder = msgspec.json.Decoder(Sidecar)


def decode_sidecar(data: bytes) -> Sidecar:
    """Parse ``model.json``; a missing field or wrong type raises ArtifactCorrupt('sidecar', ...)."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ArtifactCorrupt("sidecar", f"model.json is unreadable or incomplete: {exc}") from None


def encode_sidecar(sidecar: Sidecar) -> bytes:
    """Serialise a sidecar as indented JSON with a trailing newline.

    Raises ValueError when the result would not read back (msgspec writes a non-finite float as
    ``null``, which the decoder refuses): no store is given a version that nothing can load.
    """
    data = msgspec.json.format(msgspec.json.encode(sidecar), indent=2) + b"\n"
    try:
        _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"this sidecar would not read back: {exc}") from None
    return data
