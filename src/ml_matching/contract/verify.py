"""Verification: a version is loaded with onnxruntime and checked before it may score.

The checks, in order, each named by the ``check`` of the :class:`ArtifactCorrupt` it raises:
``sidecar`` (complete, names its folder), ``sha256`` (model.onnx has the recorded hash and size),
``onnx`` (onnxruntime loads it), ``input-width`` / ``outputs`` (the signature the sidecar names),
``golden-rows`` (the sidecar's golden rows reproduce within 1e-5). A version with per-prediction
explanations also has its explainer graph checked: ``explain`` (the file has its recorded hash,
loads, takes the model's input and gives one contribution per feature) and ``golden-explanations``
(the golden rows' contributions reproduce within 1e-5).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from ml_matching.contract.errors import ArtifactCorrupt
from ml_matching.contract.features import FeatureSet
from ml_matching.contract.sidecar import FileInfo, Sidecar, decode_sidecar
from ml_matching.contract.store import MODEL_FILE, SIDECAR_FILE, version_dir

GOLDEN_TOLERANCE = 1e-5

#: Rows as every model sees them: float32 ``[n, features]``, columns in feature-set order.
Rows32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, eq=False)
class LoadedModel:
    """One version, checked and ready to score. Immutable: a hot swap replaces the whole object."""

    version: str
    sidecar: Sidecar
    feature_set: FeatureSet
    session: ort.InferenceSession
    observed_min: Rows32
    observed_max: Rows32
    importance: dict[str, float]
    explainer: ort.InferenceSession | None = None

    def contributions(self, x: Rows32) -> npt.NDArray[np.float32]:
        """Each feature's contribution for rows ``x`` (``[n, features]``); see ``sidecar.explanation``."""
        explanation = self.sidecar.explanation
        if self.explainer is None or explanation is None:
            raise ValueError(f"version {self.version} has no explainer")
        (out,) = self.explainer.run([explanation.output], {self.sidecar.onnx.input_name: x})
        return out  # type: ignore[no-any-return]  # onnxruntime is untyped

    def predict_proba(self, x: Rows32) -> npt.NDArray[np.float32]:
        """Probability of the positive class for each row of a float32 ``[n, n_features]`` matrix."""
        return self.probabilities(x)[:, self.sidecar.onnx.positive_class_index]

    def probabilities(self, x: Rows32) -> npt.NDArray[np.float32]:
        """Every class's probability (``[n, classes]``, in ``sidecar.onnx.classes`` order) for rows ``x``."""
        onnx = self.sidecar.onnx
        (proba,) = self.session.run([onnx.probabilities_output], {onnx.input_name: x})
        return proba  # type: ignore[no-any-return]  # onnxruntime is untyped


def session_options(threads: int) -> ort.SessionOptions:
    """Sequential execution on ``threads`` intra-op threads, no spinning when idle."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn a core between requests of a service that is mostly idle.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def load_version(root: Path, version: str, threads: int = 1) -> LoadedModel:
    """Load ``root/version`` and run every check before it may serve.

    Raises
    ------
    InvalidInput
        ``version`` is not a plain version name.
    VersionNotFound
        No such version in the store.
    ArtifactCorrupt
        A check failed; ``.check`` is one of sidecar, sha256, onnx, input-width, outputs, golden-rows.
    """
    return load_dir(version_dir(root, version), threads=threads)


def load_dir(folder: Path, threads: int = 1) -> LoadedModel:
    """Load and verify a version folder (see :func:`load_version`)."""
    sidecar = _read_sidecar(folder)
    onnx_bytes = _read_onnx(folder, sidecar)
    session = _make_session(onnx_bytes, threads)
    _check_signature(session, sidecar)
    model = _assemble(sidecar, session, _explainer(folder, sidecar, threads))
    check_golden_rows(model)
    check_golden_explanations(model)
    return model


def _explainer(folder: Path, sidecar: Sidecar, threads: int) -> ort.InferenceSession | None:
    """The explainer graph's session, checked like model.onnx (None for a version without one)."""
    explanation = sidecar.explanation
    if explanation is None:
        return None
    pinned = sidecar.files.get(explanation.file)
    if pinned is None:
        raise ArtifactCorrupt("explain", f"the sidecar's files do not pin {explanation.file}")
    data = _read_pinned(folder, explanation.file, pinned, "explain")
    try:
        session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad graph
        raise ArtifactCorrupt("explain", f"onnxruntime cannot load {explanation.file}: {exc}") from None
    inputs = [i.name for i in session.get_inputs()]
    outputs = {o.name: o.shape for o in session.get_outputs()}
    n = len(sidecar.features)
    if inputs != [sidecar.onnx.input_name] or outputs.get(explanation.output, [None])[-1] != n:
        raise ArtifactCorrupt(
            "explain",
            f"{explanation.file} takes {inputs} and gives {outputs}: expected `{sidecar.onnx.input_name}` "
            f"and `{explanation.output}` with {n} columns",
        )
    return session


def check_files(folder: Path, sidecar: Sidecar) -> int:
    """Every file the sidecar pins (the card, its plots, evaluation.json, ...) against its sha256.

    Loading does not call this: a damaged plot must not stop a model from serving. ``verify`` does.
    Returns how many files were checked.
    """
    for name, pinned in sidecar.files.items():
        _read_pinned(folder, name, pinned, "files")
    return len(sidecar.files)


def _read_pinned(folder: Path, name: str, pinned: FileInfo, check: str) -> bytes:
    """The bytes of ``folder/name``, which must have the sha256 and size the sidecar pins."""
    try:
        data = (folder / name).read_bytes()
    except OSError as exc:
        raise ArtifactCorrupt(check, f"cannot read {name}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != pinned.sha256 or len(data) != pinned.bytes:
        raise ArtifactCorrupt(
            check,
            f"{name} has sha256 {digest} ({len(data)} bytes), "
            f"sidecar expects {pinned.sha256} ({pinned.bytes} bytes)",
        )
    return data


def check_golden_explanations(model: LoadedModel) -> float:
    """Re-explain the golden rows; raise naming the worst value beyond :data:`GOLDEN_TOLERANCE`.

    Returns the largest |difference| (0 for a version without explanations).
    """
    explanation = model.sidecar.explanation
    if explanation is None:
        return 0.0
    golden = model.sidecar.golden_rows
    if len(explanation.golden_contributions) != len(golden):
        raise ArtifactCorrupt(
            "golden-explanations",
            f"{len(explanation.golden_contributions)} golden contributions for {len(golden)} golden rows",
        )
    names = model.feature_set.names
    x = np.array([[row.features[n] for n in names] for row in golden], dtype=np.float32)
    result = compare(explanation.golden_contributions, model.contributions(x))
    if not result.within(GOLDEN_TOLERANCE):
        row, feature = divmod(result.worst_row, len(names))
        raise ArtifactCorrupt(
            "golden-explanations",
            f"golden row {row}, feature `{names[feature]}`: expected contribution {result.expected:.8f}, "
            f"onnxruntime gives {result.got:.8f} (tolerance {GOLDEN_TOLERANCE:g})",
        )
    return result.max_abs_diff


def _read_sidecar(folder: Path) -> Sidecar:
    try:
        data = (folder / SIDECAR_FILE).read_bytes()
    except OSError as exc:
        raise ArtifactCorrupt("sidecar", f"cannot read {SIDECAR_FILE}: {exc}") from None
    sidecar = decode_sidecar(data)
    if sidecar.version != folder.name:
        raise ArtifactCorrupt("sidecar", f"sidecar names version {sidecar.version}, folder is {folder.name}")
    if not sidecar.golden_rows:
        raise ArtifactCorrupt("sidecar", "sidecar has no golden rows to verify the model with")
    return sidecar


def _read_onnx(folder: Path, sidecar: Sidecar) -> bytes:
    try:
        data = (folder / MODEL_FILE).read_bytes()
    except OSError as exc:
        raise ArtifactCorrupt("onnx", f"cannot read {MODEL_FILE}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sidecar.onnx.sha256 or len(data) != sidecar.onnx.bytes:
        raise ArtifactCorrupt(
            "sha256",
            f"{MODEL_FILE} has sha256 {digest} ({len(data)} bytes), "
            f"sidecar expects {sidecar.onnx.sha256} ({sidecar.onnx.bytes} bytes)",
        )
    return data


def _make_session(data: bytes, threads: int) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad graph
        raise ArtifactCorrupt("onnx", f"onnxruntime cannot load {MODEL_FILE}: {exc}") from None


def _check_signature(session: ort.InferenceSession, sidecar: Sidecar) -> None:
    inputs = session.get_inputs()
    n = len(sidecar.features)
    if len(inputs) != 1 or inputs[0].name != sidecar.onnx.input_name:
        got = [i.name for i in inputs]
        raise ArtifactCorrupt("input-width", f"expected one input `{sidecar.onnx.input_name}`, got {got}")
    width = inputs[0].shape[-1]
    if width != n:
        raise ArtifactCorrupt("input-width", f"model input has {width} columns, sidecar lists {n} features")
    outputs = {o.name for o in session.get_outputs()}
    wanted = {sidecar.onnx.label_output, sidecar.onnx.probabilities_output}
    if not wanted <= outputs:
        raise ArtifactCorrupt("outputs", f"model outputs {sorted(outputs)} lack {sorted(wanted - outputs)}")


def _assemble(
    sidecar: Sidecar, session: ort.InferenceSession, explainer: ort.InferenceSession | None
) -> LoadedModel:
    feature_set = FeatureSet(sidecar.features)
    names = feature_set.names
    stats = sidecar.training_data.features
    missing = [n for n in names if n not in stats]
    if missing:
        raise ArtifactCorrupt("sidecar", f"training-data statistics lack feature `{missing[0]}`")
    return LoadedModel(
        version=sidecar.version,
        sidecar=sidecar,
        feature_set=feature_set,
        session=session,
        observed_min=np.array([stats[n].min for n in names], dtype=np.float32),
        observed_max=np.array([stats[n].max for n in names], dtype=np.float32),
        importance=normalised_importance(sidecar.feature_importance.impurity, names),
        explainer=explainer,
    )


def normalised_importance(raw: dict[str, float], names: tuple[str, ...]) -> dict[str, float]:
    """Importances in feature order, scaled to sum to 1 (all zero stays all zero)."""
    values = [max(0.0, float(raw.get(n, 0.0))) for n in names]
    total = math.fsum(values)
    return {n: (v / total if total > 0 else 0.0) for n, v in zip(names, values, strict=True)}


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two runs of the same rows compared: the farthest row and how far (NaN counts as farthest)."""

    rows: int
    worst_row: int
    max_abs_diff: float
    expected: float
    got: float

    def within(self, tolerance: float) -> bool:
        return self.max_abs_diff <= tolerance  # False for NaN too


def compare(expected: npt.ArrayLike, got: npt.ArrayLike) -> Comparison:
    """Compare two equally long sequences of probabilities (or any values) row by row.

    The one place that finds "the worst row past a tolerance": golden rows at load, the parity gate at
    export, and every later check that compares two runtimes.
    """
    want = np.asarray(expected, dtype=np.float64).reshape(-1)
    have = np.asarray(got, dtype=np.float64).reshape(-1)
    if want.shape != have.shape:
        raise ValueError(f"compared {want.size} expected values with {have.size}")
    diff = np.abs(want - have)
    nan = np.isnan(diff)
    worst = int(np.argmax(nan)) if nan.any() else int(np.argmax(diff)) if diff.size else 0
    gap = float(diff[worst]) if diff.size else 0.0
    return Comparison(
        rows=int(diff.size),
        worst_row=worst,
        max_abs_diff=gap,
        expected=float(want[worst]) if diff.size else 0.0,
        got=float(have[worst]) if diff.size else 0.0,
    )


def check_golden_rows(model: LoadedModel, tolerance: float = GOLDEN_TOLERANCE) -> float:
    """Re-score the sidecar's golden rows; return the largest |difference| or raise ArtifactCorrupt."""
    names = model.feature_set.names
    rows = model.sidecar.golden_rows
    try:
        x = np.array([[row.features[n] for n in names] for row in rows], dtype=np.float32)
    except KeyError as exc:
        raise ArtifactCorrupt("golden-rows", f"a golden row lacks feature {exc}") from None
    result = compare([row.probability for row in rows], model.predict_proba(x))
    if not result.within(tolerance):
        raise ArtifactCorrupt(
            "golden-rows",
            f"golden row {result.worst_row}: expected p={result.expected:.8f}, "
            f"onnxruntime gives {result.got:.8f} (|diff| {result.max_abs_diff:.2e} > {tolerance:g})",
        )
    return result.max_abs_diff
