"""Verification: a version is loaded with onnxruntime and checked before it may score.

The checks, in order, each named by the ``check`` of the :class:`ArtifactCorrupt` it raises:
``sidecar`` (complete, names its folder), ``sha256`` (model.onnx has the recorded hash and size),
``onnx`` (onnxruntime loads it), ``input-width`` / ``outputs`` (the signature the sidecar names),
``golden-rows`` (the sidecar's golden rows reproduce within 1e-5). A version with per-prediction
explanations also has its explainer graph checked (``explain``, ``golden-explanations``): at load
with ``explain="eager"``, before its first answer with ``"lazy"`` (:mod:`.explainer`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from ml_matching.contract.compare import GOLDEN_TOLERANCE, compare
from ml_matching.contract.errors import ArtifactCorrupt
from ml_matching.contract.explainer import Explainer, ExplainLoad
from ml_matching.contract.features import FeatureSet
from ml_matching.contract.sessions import new_session, read_file, release_freed_heap
from ml_matching.contract.sidecar import Sidecar, decode_sidecar
from ml_matching.contract.store import MODEL_FILE, SIDECAR_FILE, version_dir

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
    #: None for a version without explanations, or when loaded with ``explain="off"``.
    explainer: Explainer | None = None

    def contributions(self, x: Rows32) -> npt.NDArray[np.float32]:
        """Each feature's contribution for rows ``x`` (``[n, features]``); see ``sidecar.explanation``.

        Raises ArtifactCorrupt when the explainer, verified at its first use, failed a check.
        """
        if self.explainer is None:
            raise ValueError(f"version {self.version} has no explainer")
        return self.explainer.contributions(x)

    def predict_proba(self, x: Rows32) -> npt.NDArray[np.float32]:
        """Probability of the positive class for each row of a float32 ``[n, n_features]`` matrix."""
        return self.probabilities(x)[:, self.sidecar.onnx.positive_class_index]

    def probabilities(self, x: Rows32) -> npt.NDArray[np.float32]:
        """Every class's probability (``[n, classes]``, in ``sidecar.onnx.classes`` order) for rows ``x``."""
        onnx = self.sidecar.onnx
        (proba,) = self.session.run([onnx.probabilities_output], {onnx.input_name: x})
        return proba  # type: ignore[no-any-return]  # onnxruntime is untyped


def load_version(root: Path, version: str, threads: int = 1, explain: ExplainLoad = "eager") -> LoadedModel:
    """Load ``root/version`` and run every check before it may serve.

    Raises
    ------
    InvalidInput
        ``version`` is not a plain version name.
    VersionNotFound
        No such version in the store.
    ArtifactCorrupt
        A check failed; ``.check`` is one of sidecar, sha256, onnx, input-width, outputs, golden-rows
        (and explain, golden-explanations with ``explain="eager"``).
    """
    return load_dir(version_dir(root, version), threads=threads, explain=explain)


def load_dir(folder: Path, threads: int = 1, explain: ExplainLoad = "eager") -> LoadedModel:
    """Load and verify a version folder (see :func:`load_version`)."""
    sidecar = _read_sidecar(folder)
    session = new_session(_read_onnx(folder, sidecar), threads, "onnx", MODEL_FILE)
    _check_signature(session, sidecar)
    explainer = None
    if sidecar.explanation is not None and explain != "off":
        explainer = Explainer(folder, sidecar, sidecar.explanation, threads)
    model = _assemble(sidecar, session, explainer)
    check_golden_rows(model)
    if explainer is not None and explain == "eager":
        explainer.load()
    release_freed_heap()
    return model


def check_files(folder: Path, sidecar: Sidecar) -> int:
    """Every file the sidecar pins (the card, its plots, evaluation.json, ...) against its sha256.

    Loading does not call this: a damaged plot must not stop a model from serving. ``verify`` does.
    Returns how many files were checked.
    """
    for name, pinned in sidecar.files.items():
        read_file(folder, name, pinned, "files")
    return len(sidecar.files)


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


def _assemble(sidecar: Sidecar, session: ort.InferenceSession, explainer: Explainer | None) -> LoadedModel:
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
