"""Strict decoding of the trainer's request bodies against the feature set the store trains on.

Outcomes are decoded by msgspec into Structs built from the feature set (nothing is coerced, every
feature bounded as declared); a refused body is walked once more to name what is wrong in the
runtime's words (``outcome 3: features: feature `brandFit`: value 1.5 is outside [0, 1]``).

An outcome is either ``{"id"?, "features", "outcome"}`` or ``{"predictionId", "outcome"}`` (the
ledger has its features); ``outcome`` is ``true``/``false`` or ``1``/``0``. A list of outcomes of
the first kind only takes msgspec's one-pass path; a mixed list is decoded item by item.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

import msgspec

from ml_matching.contract import FeatureSet, InvalidInput
from ml_matching.contract.ledger import PredictionId
from ml_matching.contract.validation import kind, malformed, row_problem, row_type
from ml_matching.trainer.store import Outcome, PredictionOutcome
from ml_matching.training.data import MIN_ROWS

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"
_FIELDS = ("id", "features", "outcome")
#: ``true``/``false``, or ``1``/``0`` as the original write-up's callers send it.
OutcomeValue = bool | Literal[0, 1]
#: An outcome as ``POST /train``'s body may also give it (as the original service's callers did).
TrainOutcomeText = Literal["true", "false", "1", "0", "yes", "no"]
Item = Outcome | PredictionOutcome


class ByPrediction(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """``{"predictionId": ..., "outcome": ...}``: an outcome of a prediction in the ledger."""

    prediction_id: PredictionId
    outcome: OutcomeValue


OutcomeId = Annotated[
    str,
    msgspec.Meta(
        pattern=ID_PATTERN, description="your id of the outcome: a retry with it stores nothing twice"
    ),
]


def outcome_type(fs: FeatureSet) -> type[msgspec.Struct]:
    """``{"id"?: str, "features": {...}, "outcome": bool}`` for ``fs``."""
    return msgspec.defstruct(
        "Outcome",
        [
            ("features", row_type(fs, "OutcomeFeatures")),
            ("outcome", OutcomeValue),
            ("id", OutcomeId | None, None),
        ],
        forbid_unknown_fields=True,
    )


def train_body_type(fs: FeatureSet) -> type[msgspec.Struct]:
    """The original service's ``POST /train`` body for ``fs``, for the OpenAPI document: the body
    itself is read by the training data's parser, which names the row of a problem and also takes
    outcomes as "true"/"false"/"yes"/"no" in any case."""
    rows = Annotated[list[row_type(fs, "TrainFeatures")], msgspec.Meta(min_length=MIN_ROWS)]  # type: ignore[valid-type,misc]  # built at run time
    outcomes = Annotated[list[OutcomeValue | TrainOutcomeText], msgspec.Meta(min_length=MIN_ROWS)]
    return msgspec.defstruct("TrainBody", [("features", rows), ("outcomes", outcomes)])


def outcomes_type(fs: FeatureSet, max_rows: int) -> type[msgspec.Struct]:
    """``{"outcomes": [outcome, ...]}`` with 1 to ``max_rows`` outcomes."""
    one = outcome_type(fs)
    items = Annotated[list[one], msgspec.Meta(min_length=1, max_length=max_rows)]  # type: ignore[valid-type]  # built at run time
    return msgspec.defstruct("Outcomes", [("outcomes", items)], forbid_unknown_fields=True)


class OutcomeDecoder:
    """Decodes ``POST /outcomes`` bodies (one outcome or ``{"outcomes": [...]}``) for one feature set."""

    def __init__(self, fs: FeatureSet, max_rows: int) -> None:
        self.feature_set = fs
        self._max_rows = max_rows
        self._one = msgspec.json.Decoder(outcome_type(fs))
        self._many = msgspec.json.Decoder(outcomes_type(fs, max_rows))
        self._keys = msgspec.json.Decoder(dict[str, msgspec.Raw])
        self._by_prediction = msgspec.json.Decoder(ByPrediction)
        self._raw_items = msgspec.json.Decoder(
            Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=max_rows)]
        )

    def decode(self, body: bytes) -> list[Item]:
        """The outcomes of ``body``, each with an id (a new one where the client gave none)."""
        try:
            keys = self._keys.decode(body)
            if "outcomes" not in keys:
                return [self._item(body, keys)]
            try:
                many: Any = self._many.decode(body)
                return [self._outcome(item) for item in many.outcomes]
            except msgspec.ValidationError:
                if set(keys) != {"outcomes"}:
                    raise
                return [self._item(raw) for raw in self._raw_items.decode(keys["outcomes"])]
        except msgspec.DecodeError as exc:
            why = malformed(str(exc), body) if not isinstance(exc, msgspec.ValidationError) else None
            raise InvalidInput(why or self._explain(body) or str(exc)) from None
        except RecursionError:  # msgspec's own limit, met skipping a deeply nested value
            raise InvalidInput("malformed JSON: arrays or objects nested too deeply") from None

    def _item(self, raw: bytes | msgspec.Raw, keys: dict[str, msgspec.Raw] | None = None) -> Item:
        keys = keys if keys is not None else self._keys.decode(raw)
        if "predictionId" in keys:
            found = self._by_prediction.decode(raw)
            return PredictionOutcome(found.prediction_id, bool(found.outcome))
        return self._outcome(self._one.decode(raw))

    @staticmethod
    def _outcome(item: Any) -> Outcome:
        return Outcome(item.id or uuid.uuid4().hex, msgspec.structs.asdict(item.features), bool(item.outcome))

    def _explain(self, body: bytes) -> str | None:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            wanted = '{"features": {...}, "outcome": true} or {"outcomes": [...]}'
            return f"expected one outcome {wanted}, got {kind(data)}"
        if "outcomes" not in data:
            return outcome_problem(data, self.feature_set)
        extra = sorted(k for k in data if k != "outcomes")
        items = data["outcomes"]
        if extra:
            return f'unknown field `{extra[0]}` (expected {{"outcomes": [outcome, ...]}})'
        if not isinstance(items, list) or not items:
            return "`outcomes` must be a non-empty list of outcomes"
        if len(items) > self._max_rows:
            return f"`outcomes` has {len(items)} outcomes, more than MAX_BATCH_ROWS ({self._max_rows})"
        for i, item in enumerate(items):
            problem = outcome_problem(item, self.feature_set)
            if problem:
                return f"outcome {i}: {problem}"
        return None


def outcome_problem(item: Any, fs: FeatureSet) -> str | None:
    """The first problem of one decoded outcome, or None."""
    if not isinstance(item, dict):
        return f'expected an outcome {{"features": {{...}}, "outcome": true}}, got {kind(item)}'
    if "predictionId" in item:
        return prediction_outcome_problem(item)
    unknown = [k for k in item if k not in _FIELDS]
    if unknown:
        return f"unknown field `{unknown[0]}` (an outcome has `id`, `features` and `outcome`)"
    missing = [k for k in ("features", "outcome") if k not in item]
    if missing:
        return f"missing field `{missing[0]}`"
    if not _outcome_value(item["outcome"]):
        return f"field `outcome`: expected true or false (or 1 or 0), got {kind(item['outcome'])}"
    oid = item.get("id")
    if oid is not None and not _valid_id(oid):
        rule = "1 to 128 letters, digits or ._:@/- (starting with a letter or digit)"
        return f"field `id`: expected {rule}, got {kind(oid)}"
    problem = row_problem(item["features"], fs)
    return f"features: {problem}" if problem else None


def _valid_id(value: Any) -> bool:
    try:
        msgspec.convert(value, OutcomeId, strict=True)
    except msgspec.ValidationError:
        return False
    return True


def prediction_outcome_problem(item: dict[str, Any]) -> str | None:
    unknown = [k for k in item if k not in ("predictionId", "outcome")]
    if unknown:
        return f"unknown field `{unknown[0]}` (an outcome by prediction has `predictionId` and `outcome`)"
    if "outcome" not in item:
        return "missing field `outcome`"
    if not _outcome_value(item["outcome"]):
        return f"field `outcome`: expected true or false (or 1 or 0), got {kind(item['outcome'])}"
    try:
        msgspec.convert(item["predictionId"], PredictionId, strict=True)
    except msgspec.ValidationError:
        got = kind(item["predictionId"])
        return (
            f"field `predictionId`: expected a prediction id as the runtime answers it (a UUIDv7), got {got}"
        )
    return None


def _outcome_value(value: Any) -> bool:
    return isinstance(value, bool) or (type(value) is int and value in (0, 1))


def ledger_problem(body: bytes, exc: msgspec.DecodeError) -> str:
    """Why a ``POST /predictions`` body was refused: malformed JSON in its words, else msgspec's
    (``Expected `float` >= 0.0 - at `$.rows[3].probability```)."""
    if not isinstance(exc, msgspec.ValidationError):
        return malformed(str(exc), body) or str(exc)
    return str(exc)
