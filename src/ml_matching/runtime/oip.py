"""The Open Inference Protocol (KServe v2) REST messages: decode, check and answer an infer request.

One input tensor, named as the sidecar's ONNX input, FP32, shape ``[N, n_features]``, its ``data``
flat (row-major) or nested, columns in the sidecar's feature order. It is checked as ``/predict``
checks its rows: numbers only, finite in float32, inside each feature's declared range, at most
MAX_BATCH_ROWS rows; the error names the tensor, the row and the feature. Outputs:
``probabilities`` (FP32 ``[N, classes]``) and ``label`` (INT64 ``[N]``: 1 when the positive class's
probability reaches the sidecar's ``decisionThreshold``), or only those the request names.

Binary tensor data (Triton's extension) is refused on input; a request for binary outputs is
answered in JSON, which every client reads (the extension is not listed at ``GET /v2``).
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from ml_matching.contract import FeatureSet, InvalidInput, LoadedModel, Sidecar
from ml_matching.contract.validation import model_bounds, value_problem

DATATYPE = "FP32"
OUTPUTS = ("probabilities", "label")
PLATFORM = "onnxruntime_onnx"


class Tensor(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    shape: list[int]
    datatype: str
    data: msgspec.Raw  # read once the shape is known: flat or nested numbers
    parameters: dict[str, Any] | None = None


class RequestedOutput(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The request body; ``model_name`` and ``model_version`` are sent by some clients (KServe's)."""

    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None
    model_name: str | None = None
    model_version: str | None = None


class TensorMetadata(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(msgspec.Struct, omit_defaults=True):
    """``GET /v2/models/{name}[/versions/{v}]``; ``parameters`` holds the feature order and classes."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = {}


class OutputTensor(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]  # row-major: floats for FP32, integers for INT64


class InferResponse(msgspec.Struct, omit_defaults=True):
    """``parameters`` (when the rows are recorded in the prediction ledger): ``prediction_ids``, and
    ``experiment`` and ``arm`` under an experiment."""

    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None


class ServerMetadata(msgspec.Struct):
    name: str
    version: str
    extensions: list[str]


class Live(msgspec.Struct):
    live: bool


class ReadyState(msgspec.Struct):
    ready: bool


class ProtocolError(msgspec.Struct):
    """Every error answer of the v2 paths (the protocol's shape); the status code says which."""

    error: str


_request = msgspec.json.Decoder(InferRequest)
_encoder = msgspec.json.Encoder()
_flat = msgspec.json.Decoder(list[float])
_nested = msgspec.json.Decoder(list[list[float]])


def metadata(name: str, versions: list[str], sidecar: Sidecar) -> ModelMetadata:
    n = len(sidecar.features)
    return ModelMetadata(
        name=name,
        versions=versions,
        platform=PLATFORM,
        inputs=[TensorMetadata(sidecar.onnx.input_name, DATATYPE, [-1, n])],
        outputs=[
            TensorMetadata("probabilities", DATATYPE, [-1, len(sidecar.onnx.classes)]),
            TensorMetadata("label", "INT64", [-1]),
        ],
        parameters={
            "version": sidecar.version,
            "algorithm": sidecar.algorithm,
            "features": [f.name for f in sidecar.features],
            "classes": list(sidecar.onnx.classes),
            "decision_threshold": sidecar.decision_threshold,
        },
    )


def decode(body: bytes, header_length: str | None) -> InferRequest:
    """The request's JSON (``Inference-Header-Content-Length`` shorter than the body: binary data)."""
    if header_length is not None and header_length.strip() != str(len(body)):
        raise InvalidInput(
            "binary tensor data is not supported: send `data` as JSON (tritonclient: binary_data=False)"
        )
    try:
        return _request.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"infer request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"malformed JSON: {str(exc).removeprefix('JSON is malformed: ')}") from None
    except RecursionError:  # parameters and data are free JSON: 1,000 levels overflowed the stack
        raise InvalidInput("infer request: JSON nested too deeply") from None


def matrix(request: InferRequest, model: LoadedModel, max_rows: int) -> npt.NDArray[np.float32]:
    """The request's one input tensor as float32 ``[N, n_features]``, checked like /predict's rows."""
    expected = model.sidecar.onnx.input_name
    if len(request.inputs) != 1:
        raise InvalidInput(f"`inputs` has {len(request.inputs)} tensors: the model takes one, `{expected}`")
    tensor = request.inputs[0]
    where = f"input `{tensor.name}`"
    if tensor.name != expected:
        raise InvalidInput(f"{where}: the model has no such input; its one input is `{expected}`")
    if tensor.datatype != DATATYPE:
        raise InvalidInput(f"{where}: datatype {tensor.datatype!r}, expected {DATATYPE!r}")
    rows = _shape(where, tensor.shape, model.feature_set, max_rows)
    x = _values(where, tensor.data, rows, len(model.feature_set))
    _check_values(where, x, model.feature_set)
    return x.astype(np.float32)


def _shape(where: str, shape: list[int], fs: FeatureSet, max_rows: int) -> int:
    n = len(fs)
    if len(shape) != 2 or shape[1] != n:
        raise InvalidInput(f"{where}: shape {shape}, expected [N, {n}] (N rows of the model's {n} features)")
    if not 1 <= shape[0] <= max_rows:
        raise InvalidInput(
            f"{where}: shape {shape} has {shape[0]} rows, expected 1 to MAX_BATCH_ROWS ({max_rows})"
        )
    return shape[0]


def _values(where: str, data: msgspec.Raw, rows: int, n: int) -> npt.NDArray[np.float64]:
    nested = bytes(data).lstrip()[1:].lstrip().startswith(b"[")  # [[...], ...] or [...]
    try:
        values: list[float] | list[list[float]] = (_nested if nested else _flat).decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidInput(
            f"{where}: `data` must be numbers, flat or nested [N][{n}]: {_reason(exc)}"
        ) from None
    if nested:
        widths = [len(row) for row in values if isinstance(row, list)]
        for i, width in enumerate(widths):
            if width != n:
                raise InvalidInput(f"{where}: `data` row {i} has {width} values, expected {n}")
    x = np.array(values, dtype=np.float64)
    if x.size != rows * n:
        raise InvalidInput(f"{where}: `data` has {x.size} values, shape [{rows}, {n}] needs {rows * n}")
    return x.reshape(rows, n)


def _reason(exc: msgspec.ValidationError) -> str:
    # msgspec's "Number out of range" is how an overflowing literal such as 1e999 shows up.
    text = str(exc).replace("Number out of range", "Number is not finite (out of float range)")
    return text.replace("at `$", "at `data")


def _check_values(where: str, x: npt.NDArray[np.float64], fs: FeatureSet) -> None:
    """The first value that is not finite in float32 or outside its feature's range, named as
    /predict names it."""
    lo, hi = model_bounds(fs)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (x < lo) | (x > hi)
    if not bad.any():
        return
    i, j = (int(k) for k in np.argwhere(bad)[0])
    feature = fs.features[j]
    problem = value_problem(float(x[i, j]), feature)
    raise InvalidInput(f"{where}: row {i}, column {j} (feature `{feature.name}`): {problem}")


def unit(request: InferRequest) -> str | None:
    """The request parameter ``unit``: the unit's key under an experiment (None when absent)."""
    key = (request.parameters or {}).get("unit")
    if key is None:
        return None
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"parameter `unit`: expected the unit's key as a non-empty string, got {key!r}")
    return key


def with_predictions(
    response: InferResponse, ids: list[str], experiment: str | None, arm: str | None
) -> InferResponse:
    parameters: dict[str, Any] = {"prediction_ids": ids}
    if experiment is not None:
        parameters |= {"experiment": experiment, "arm": arm}
    return msgspec.structs.replace(response, parameters=parameters)


def answer(
    request: InferRequest, model: LoadedModel, x: npt.NDArray[np.float32], model_name: str
) -> tuple[InferResponse, npt.NDArray[np.float32]]:
    """Score ``x`` and build the outputs the request asks for (all when it names none), with the
    positive class's probabilities."""
    wanted = [o.name for o in request.outputs] if request.outputs else list(OUTPUTS)
    unknown = [name for name in wanted if name not in OUTPUTS]
    if unknown:
        raise InvalidInput(f"unknown output `{unknown[0]}`: the model's outputs are `probabilities`, `label`")
    twice = next((name for i, name in enumerate(wanted) if name in wanted[:i]), None)
    if twice is not None:  # each would be built again: a small request, an answer of gigabytes
        raise InvalidInput(f"output `{twice}` asked for twice: ask for each of `probabilities`, `label` once")
    proba = model.probabilities(x)
    positive = proba[:, model.sidecar.onnx.positive_class_index]
    tensors = {
        "probabilities": OutputTensor("probabilities", DATATYPE, list(proba.shape), proba.ravel().tolist()),
        "label": OutputTensor(
            "label",
            "INT64",
            [len(x)],
            (positive >= model.sidecar.decision_threshold).astype(np.int64).tolist(),
        ),
    }
    response = InferResponse(
        model_name=model_name,
        model_version=model.version,
        outputs=[tensors[name] for name in wanted],
        id=request.id,
    )
    return response, positive


def encode(response: InferResponse) -> bytes:
    return _encoder.encode(response)
