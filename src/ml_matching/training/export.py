"""ONNX export with skl2onnx and the parity gate against onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

from ml_matching.contract import compare, session_options
from ml_matching.training.errors import ParityError

INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
# Pinned so the same scikit-learn model always converts to the same bytes; skl2onnx then lowers
# each domain to the oldest version the graph needs, which the exported model records.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


@dataclass(frozen=True)
class Exported:
    """An exported model: its bytes and the opsets it imports."""

    data: bytes
    opset: int
    ml_opset: int


def export_onnx(estimator: Any, n_features: int) -> Exported:
    """Convert a fitted binary classifier: float32 ``input [N, n]`` → ``label [N]``, ``probabilities [N, 2]``.

    ZipMap is off, so both outputs are plain tensors every onnxruntime binding can return.
    """
    model = convert_sklearn(
        estimator,
        "ml-matching",
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        final_types=[
            (LABEL_OUTPUT, Int64TensorType([None])),
            (PROBABILITIES_OUTPUT, FloatTensorType([None, 2])),
        ],
        options={id(estimator): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    opsets: dict[str, int] = {}
    for imp in model.opset_import:
        opsets[imp.domain] = max(imp.version, opsets.get(imp.domain, 0))
    # skl2onnx lists the opsets in an order that varies between processes (and may repeat a
    # domain); one sorted entry per domain gives the same model the same bytes every time.
    del model.opset_import[:]
    for domain in sorted(opsets):
        model.opset_import.add(domain=domain, version=opsets[domain])
    return Exported(model.SerializeToString(), opsets.get("", 0), opsets.get("ai.onnx.ml", 0))


def onnx_session(data: bytes) -> ort.InferenceSession:
    """An onnxruntime session configured as the runtime configures it."""
    onnx.checker.check_model(onnx.load_from_string(data))
    return ort.InferenceSession(data, session_options(1), providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class ParityResult:
    rows: int
    max_abs_diff: float


def check_parity(
    estimator: Any, session: ort.InferenceSession, x: npt.NDArray[np.float32], tolerance: float
) -> ParityResult:
    """Compare scikit-learn and onnxruntime on the same float32 rows.

    Raises
    ------
    ParityError
        When some row differs by more than ``tolerance``; the message names the row and the gap.
    """
    expected = estimator.predict_proba(x.astype(np.float64))[:, 1]
    got = session.run([PROBABILITIES_OUTPUT], {INPUT_NAME: x})[0][:, 1]
    result = compare(expected, got)
    if not result.within(tolerance):
        raise ParityError(
            f"ONNX export differs from scikit-learn on row {result.worst_row}: "
            f"p_sklearn={result.expected:.8f}, p_onnx={result.got:.8f}, "
            f"|diff|={result.max_abs_diff:.3e} > tolerance {tolerance:g}"
        )
    return ParityResult(rows=result.rows, max_abs_diff=result.max_abs_diff)
