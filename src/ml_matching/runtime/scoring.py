"""Strict request decoding and response encoding around a loaded model.

A :class:`Scorer` is built once per model version: it holds msgspec decoders for that version's
feature set (unknown fields, wrong types, non-finite and out-of-range values are all rejected, and
the error names the field) and the response parts that never change (importances, version).

confidence = 100 · |2p − 1| · (1 − k/n), where k of the n features lie outside the range seen in
training (compared in float32, as the model sees them): an extrapolation is never fully confident.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from ml_matching.contract import ArtifactCorrupt, InvalidInput, LoadedModel, Rows32
from ml_matching.contract.ids import PredictionIds
from ml_matching.contract.validation import explain_batch, explain_row, malformed, not_json, row_type
from ml_matching.runtime.drift import DriftWindow
from ml_matching.runtime.errors import NotExplainable

#: The process's source of prediction ids (UUIDv7).
new_prediction_id = PredictionIds()


class Tag(NamedTuple):
    """Where a row was served, as its answer says: the experiment and arm (None outside one)."""

    experiment: str | None = None
    arm: str | None = None


PLAIN = Tag()


class Prediction(msgspec.Struct, rename="camel", omit_defaults=True):
    """One scored row (as in a batch): ``predictionId`` always (the id an outcome may name later);
    ``arm`` and ``modelVersion`` (the version that served it) when the row is in an experiment;
    ``contributions`` only when explanations were asked for, and then, in an experiment, the
    ``baseValue`` they start from (the serving version's: arms differ)."""

    score: float
    confidence: float
    success_probability: float
    prediction_id: str = ""
    arm: str | None = None
    model_version: str | None = None
    contributions: dict[str, float] | None = None
    base_value: float | None = None


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
    prediction_id: str
    experiment: str | None = None
    arm: str | None = None
    contributions: dict[str, float] | None = None
    base_value: float | None = None
    explanation_scale: str | None = None


class BatchResponse(msgspec.Struct, rename="camel", omit_defaults=True):
    """``POST /predict/batch``: one Prediction per instance, in order (``baseValue`` and
    ``explanationScale`` once, with ``?explain=true``: control's). ``modelVersion`` is the version
    that serves rows outside an experiment (control); with ``units``, ``experiment`` names the
    experiment and each row its arm and version (and, explained, its own ``baseValue``); under the
    holdout each row names its version (a held unit's has no arm)."""

    predictions: list[Prediction]
    feature_importance: dict[str, float]
    model_version: str
    experiment: str | None = None
    base_value: float | None = None
    explanation_scale: str | None = None


#: Up to this many rows, score() is done on plain floats: numpy's dozen calls cost 3–13 µs more a
#: call up to 4 rows, about as much at 6 and 8, less from 12 on (``bench/few_rows.py``). A coalesced group
#: is often this small, and under an experiment smaller still: its arms split each turn's few rows.
FEW_ROWS = 4


# Wire twins of the responses: importances are pre-encoded once per model, not per request.
class _PredictWire(msgspec.Struct, rename="camel", omit_defaults=True):
    score: float
    confidence: float
    success_probability: float
    feature_importance: msgspec.Raw
    model_version: str
    prediction_id: str
    experiment: str | None = None
    arm: str | None = None


class _BatchWire(msgspec.Struct, rename="camel", omit_defaults=True):
    predictions: list[Prediction]
    feature_importance: msgspec.Raw
    model_version: str
    experiment: str | None = None


UnitKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1, description="the unit's key (a brand id, a pair id): its arm in an experiment"
    ),
]


def batch_type(row: type[msgspec.Struct], max_rows: int) -> type[msgspec.Struct]:
    """``{"instances": [row, ...], "units"?: [key, ...]}`` with 1 to ``max_rows`` rows (a key each)."""
    rows = Annotated[list[row], msgspec.Meta(min_length=1, max_length=max_rows)]  # type: ignore[valid-type]  # built at run time
    units = Annotated[list[UnitKey], msgspec.Meta(min_length=1, max_length=max_rows)]
    return msgspec.defstruct(
        "PredictBatchRequest",
        [("instances", rows), ("units", units | None, None)],
        forbid_unknown_fields=True,
    )


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
        """Score one JSON object of features outside any experiment; the encoded PredictResponse."""
        return self.answer_rows([self.decode_row(body)], [new_prediction_id()], [PLAIN])[0][0]

    def decode_row(self, body: bytes) -> tuple[float, ...]:
        """One JSON object of features → its values in feature order (raises InvalidInput)."""
        try:
            return self._astuple(self._row_decoder.decode(body))
        except msgspec.DecodeError as exc:
            raise self._refusal(exc, body, batch=False) from None

    def answer_rows(
        self, rows: list[tuple[float, ...]], ids: Sequence[str], tags: Sequence[Tag]
    ) -> tuple[list[bytes], Rows32, list[float]]:
        """Score decoded rows in one onnxruntime call: one encoded PredictResponse per row, the
        float32 rows the model saw, and each row's probability."""
        x = np.array(rows, dtype=np.float32)
        if self.observe is not None:
            self.observe(x, False)
        wire, imp, version, encode = _PredictWire, self._importance, self.version, self._encoder.encode
        if len(rows) <= FEW_ROWS:
            ps, cs = self._score_few(x)
        else:
            pa, ca = self.score(x)
            ps, cs = pa.tolist(), ca.tolist()
        answers = [
            encode(wire(100.0 * pv, cv, 100.0 * pv, imp, version, pid, *tag))
            for pv, cv, pid, tag in zip(ps, cs, ids, tags, strict=True)
        ]
        return answers, x, ps

    def _score_few(self, x: Rows32) -> tuple[list[float], list[float]]:
        """score() for a few rows: the same formula on plain floats, where numpy's dozen calls cost
        more than the rows (x holds the float32 values the model saw, compared as such)."""
        ps: list[float] = self.model.predict_proba(x).tolist()
        bounds, n = self._bounds, self._n
        confidences = []
        for p, row in zip(ps, x.tolist(), strict=True):
            outside = sum(v < lo or v > hi for v, (lo, hi) in zip(row, bounds, strict=True))
            confidences.append(100.0 * abs(2.0 * p - 1.0) * (1.0 - outside / n))
        return ps, confidences

    def decode_batch(self, body: bytes) -> tuple[Rows32, list[str] | None]:
        """The rows of ``{"instances": [...], "units"?: [...]}`` as float32, and the units' keys;
        raises InvalidInput naming what is wrong."""
        try:
            batch: Any = self._batch_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise self._refusal(exc, body, batch=True) from None
        units = batch.units
        if units is not None and len(units) != len(batch.instances):
            raise InvalidInput(
                f"`units` has {len(units)} keys for {len(batch.instances)} instances: one per row, in order"
            )
        astuple = self._astuple
        return np.array([astuple(r) for r in batch.instances], dtype=np.float32), units

    def predictions(
        self,
        x: Rows32,
        ids: Sequence[str],
        tags: Sequence[Tag] | None = None,
        contributions: list[list[float]] | None = None,
    ) -> tuple[list[Prediction], list[float]]:
        """Score rows ``x`` as a batch's predictions (each row's probability beside)."""
        if self.observe is not None:
            self.observe(x, True)
        p, conf = self.score(x)
        ps = p.tolist()
        version = self.version if tags is not None else None
        names = self.model.feature_set.names
        out = []
        for i, (pv, cv) in enumerate(zip(ps, conf.tolist(), strict=True)):
            arm = tags[i].arm if tags is not None else None
            explained = dict(zip(names, contributions[i], strict=True)) if contributions is not None else None
            out.append(Prediction(100.0 * pv, cv, 100.0 * pv, ids[i], arm, version, explained))
        return out, ps

    def encode_batch(
        self,
        predictions: list[Prediction],
        experiment: str | None = None,
        explained: tuple[float, str] | None = None,
    ) -> bytes:
        """The BatchResponse of ``predictions`` (this version's importances, as control)."""
        if explained is None:
            return self._encoder.encode(_BatchWire(predictions, self._importance, self.version, experiment))
        base, scale = explained
        response = BatchResponse(predictions, self.model.importance, self.version, experiment, base, scale)
        return self._encoder.encode(response)

    def predict_batch(self, body: bytes) -> bytes:
        """Score ``{"instances": [...]}`` outside any experiment; the encoded BatchResponse."""
        x, _ = self.decode_batch(body)
        predictions, _ = self.predictions(x, [new_prediction_id() for _ in range(len(x))])
        return self.encode_batch(predictions)

    def explain_one(
        self, row: tuple[float, ...], prediction_id: str, tag: Tag
    ) -> tuple[bytes, Rows32, float]:
        """``POST /predict?explain=true``: the PredictResponse with the row's contributions."""
        x = np.array([row], dtype=np.float32)
        contributions, base, scale = self.explanations(x)  # first: a refused row is not observed
        if self.observe is not None:
            self.observe(x, False)
        (p,), (conf,) = self._score_few(x)
        names = self.model.feature_set.names
        response = PredictResponse(
            100.0 * p, conf, 100.0 * p, self.model.importance, self.version, prediction_id, *tag,
            dict(zip(names, contributions[0], strict=True)), base, scale,
        )  # fmt: skip
        return self._encoder.encode(response), x, p

    def explanations(self, x: Rows32) -> tuple[list[list[float]], float, str]:
        """Each row's contributions, the base value and the scale (raises NotExplainable)."""
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
        return contributions, explanation.base_value, explanation.scale

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
        why = why or not_json(body)
        # msgspec's "Number out of range" is how an overflowing literal such as 1e999 shows up.
        return InvalidInput(
            why or str(exc).replace("Number out of range", "Number is not finite (out of float range)")
        )
