"""Strict request decoding and response encoding around a loaded model.

A :class:`Scorer` is built once per model version: it holds msgspec decoders for that version's
feature set (unknown fields, wrong types, non-finite and out-of-range values are all rejected, and
the error names the field) and the response parts that never change (importances, version).

confidence = 100 · |2p − 1| · (1 − k/n), where k of the n features lie outside the range seen in
training (compared in float32, as the model sees them): an extrapolation is never fully confident.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt

from ml_matching.contract import ArtifactCorrupt, InvalidInput, LoadedModel
from ml_matching.contract.validation import explain_batch, explain_row, malformed, row_type
from ml_matching.runtime.drift import DriftWindow
from ml_matching.runtime.errors import NotExplainable


class Prediction(msgspec.Struct, rename="camel", omit_defaults=True):
    """One scored row (as in a batch); ``contributions`` only when explanations were asked for."""

    score: float
    confidence: float
    success_probability: float
    contributions: dict[str, float] | None = None


class PredictResponse(msgspec.Struct, rename="camel", omit_defaults=True):
    """``POST /predict``: score and successProbability are 100·p; importances are global.

    With ``?explain=true``: ``contributions`` (each feature's push on this row's output),
    ``baseValue`` (where they start from) and ``explanationScale`` (``probability`` or
    ``log-odds``: the scale in which ``baseValue + Σ contributions`` is the model's output).
    """

    score: float
    confidence: float
    success_probability: float
    feature_importance: dict[str, float]
    model_version: str
    contributions: dict[str, float] | None = None
    base_value: float | None = None
    explanation_scale: str | None = None


class BatchResponse(msgspec.Struct, rename="camel", omit_defaults=True):
    """``POST /predict/batch``: one Prediction per instance, in order (``baseValue`` and
    ``explanationScale`` once, with ``?explain=true``)."""

    predictions: list[Prediction]
    feature_importance: dict[str, float]
    model_version: str
    base_value: float | None = None
    explanation_scale: str | None = None


# Wire twins of the responses: importances are pre-encoded once per model, not per request.
class _PredictWire(msgspec.Struct, rename="camel"):
    score: float
    confidence: float
    success_probability: float
    feature_importance: msgspec.Raw
    model_version: str


class _BatchWire(msgspec.Struct, rename="camel"):
    predictions: list[Prediction]
    feature_importance: msgspec.Raw
    model_version: str


def batch_type(row: type[msgspec.Struct], max_rows: int) -> type[msgspec.Struct]:
    """``{"instances": [row, ...]}`` with 1 to ``max_rows`` rows."""
    rows = Annotated[list[row], msgspec.Meta(min_length=1, max_length=max_rows)]  # type: ignore[valid-type]  # built at run time
    return msgspec.defstruct("PredictBatchRequest", [("instances", rows)], forbid_unknown_fields=True)


class Scorer:
    """Decode → score → encode for one loaded model version."""

    def __init__(self, model: LoadedModel, max_batch_rows: int) -> None:
        self.model = model
        self.version = model.version
        self._n = len(model.feature_set)
        self.max_batch_rows = max_batch_rows
        self._row_decoder = msgspec.json.Decoder(row_type(model.feature_set))
        self._batch_decoder = msgspec.json.Decoder(batch_type(row_type(model.feature_set), max_batch_rows))
        self._importance = msgspec.Raw(msgspec.json.encode(model.importance))
        self._bounds = list(zip(model.observed_min.tolist(), model.observed_max.tolist(), strict=True))
        self._encoder = msgspec.json.Encoder()
        self._astuple = msgspec.structs.astuple
        #: Told of every scored float32 matrix (and whether it was one batch request): metrics, drift.
        self.observe: Callable[[npt.NDArray[np.float32], bool], None] | None = None
        #: The rows this version scored lately, for the drift monitor (set by the service).
        self.window: DriftWindow | None = None
        #: Told when the explainer, verified at its first use, was refused (set by the service).
        self.refused_explainer: Callable[[ArtifactCorrupt], None] | None = None

    def predict(self, body: bytes) -> bytes:
        """Score one JSON object of features; return the encoded PredictResponse."""
        return self.predict_rows([self.decode_row(body)])[0]

    def decode_row(self, body: bytes) -> tuple[float, ...]:
        """One JSON object of features → its values in feature order (raises InvalidInput)."""
        try:
            return self._astuple(self._row_decoder.decode(body))
        except msgspec.DecodeError as exc:
            raise self._refusal(exc, body, batch=False) from None

    def predict_rows(self, rows: list[tuple[float, ...]]) -> list[bytes]:
        """Score decoded rows in one onnxruntime call; one encoded PredictResponse per row."""
        x = np.array(rows, dtype=np.float32)
        if self.observe is not None:
            self.observe(x, False)
        if len(rows) == 1:
            return [self._encode_one(x)]
        p, conf = self.score(x)
        wire, imp, version = _PredictWire, self._importance, self.version
        return [
            self._encoder.encode(wire(100.0 * pv, cv, 100.0 * pv, imp, version))
            for pv, cv in zip(p.tolist(), conf.tolist(), strict=True)
        ]

    def _encode_one(self, x: npt.NDArray[np.float32]) -> bytes:
        p = float(self.model.predict_proba(x)[0])
        # The same formula as score(), on plain floats, where numpy's per-call overhead would dominate;
        # x holds the float32 values the model saw.
        outside = sum(v < lo or v > hi for v, (lo, hi) in zip(x[0].tolist(), self._bounds, strict=True))
        conf = 100.0 * abs(2.0 * p - 1.0) * (1.0 - outside / self._n)
        return self._encoder.encode(_PredictWire(100.0 * p, conf, 100.0 * p, self._importance, self.version))

    def decode_batch(self, body: bytes) -> npt.NDArray[np.float32]:
        """The rows of ``{"instances": [...]}`` as float32; raises InvalidInput naming what is wrong."""
        try:
            batch: Any = self._batch_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise self._refusal(exc, body, batch=True) from None
        astuple = self._astuple
        return np.array([astuple(r) for r in batch.instances], dtype=np.float32)

    def predict_batch(self, body: bytes) -> bytes:
        """Score ``{"instances": [...]}``; return the encoded BatchResponse."""
        x = self.decode_batch(body)
        if self.observe is not None:
            self.observe(x, True)
        p, conf = self.score(x)
        scores = (100.0 * p.astype(np.float64)).tolist()
        preds = [Prediction(s, c, s) for s, c in zip(scores, conf.tolist(), strict=True)]
        return self._encoder.encode(_BatchWire(preds, self._importance, self.version))

    def explain(self, body: bytes) -> bytes:
        """``POST /predict?explain=true``: the PredictResponse with the row's contributions."""
        x = np.array([self.decode_row(body)], dtype=np.float32)
        (prediction,), base, scale = self._explained(x)  # first: a refused row is not observed
        if self.observe is not None:
            self.observe(x, False)
        return self._encoder.encode(
            PredictResponse(
                prediction.score,
                prediction.confidence,
                prediction.success_probability,
                self.model.importance,
                self.version,
                prediction.contributions,
                base,
                scale,
            )
        )

    def explain_batch(self, body: bytes) -> bytes:
        """``POST /predict/batch?explain=true``: the BatchResponse with each row's contributions."""
        x = self.decode_batch(body)
        predictions, base, scale = self._explained(x)  # first: refused rows are not observed
        if self.observe is not None:
            self.observe(x, True)
        return self._encoder.encode(
            BatchResponse(predictions, self.model.importance, self.version, base, scale)
        )

    def _explained(self, x: npt.NDArray[np.float32]) -> tuple[list[Prediction], float, str]:
        explanation = self.model.sidecar.explanation
        if explanation is None:
            raise NotExplainable(
                f"version {self.version} has no explainer (it was trained before explanations existed): "
                "retrain it, or score without explain=true"
            )
        if self.model.explainer is None:
            raise NotExplainable(f"explanations are off here (EXPLAIN_LOAD=off): version {self.version}")
        try:
            contributions = self.model.contributions(x).astype(np.float64).tolist()
        except ArtifactCorrupt as exc:  # checked at its first use, and refused: scores still serve
            if self.refused_explainer is not None:
                self.refused_explainer(exc)
            raise NotExplainable(
                f"version {self.version}'s explainer failed verification ({exc}); it still scores "
                "without explain=true"
            ) from exc
        p, conf = self.score(x)
        names = self.model.feature_set.names
        predictions = [
            Prediction(100.0 * pv, cv, 100.0 * pv, dict(zip(names, row, strict=True)))
            for pv, cv, row in zip(p.tolist(), conf.tolist(), contributions, strict=True)
        ]
        return predictions, explanation.base_value, explanation.scale

    def score(self, x: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Positive-class probabilities (float32 model output, widened) and confidences for rows ``x``."""
        p = self.model.predict_proba(x).astype(np.float64)
        outside = ((x < self.model.observed_min) | (x > self.model.observed_max)).sum(axis=1)
        conf = 100.0 * np.abs(2.0 * p - 1.0) * (1.0 - outside / self._n)
        return p, conf

    def _refusal(self, exc: msgspec.DecodeError, body: bytes, *, batch: bool) -> InvalidInput:
        """The 400 for a body msgspec refused, worded by the slow explaining walk when it can."""
        if not isinstance(exc, msgspec.ValidationError):
            return InvalidInput(malformed(str(exc), body))
        fs = self.model.feature_set
        why = explain_batch(body, fs, self.max_batch_rows) if batch else explain_row(body, fs)
        # msgspec's "Number out of range" is how an overflowing literal such as 1e999 shows up.
        return InvalidInput(
            why or str(exc).replace("Number out of range", "Number is not finite (out of float range)")
        )
