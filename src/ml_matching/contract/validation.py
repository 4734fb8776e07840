"""Strict decoding of a feature row, and why a body was refused, in the words the Node client uses too.

:func:`row_type` is the msgspec Struct of one row of a feature set: unknown fields, wrong types,
non-finite and out-of-range values are refused, and nothing is coerced. The hot path decodes with it
and never comes further: msgspec decodes a good body straight into a Struct and refuses a bad
one in microseconds. Only then is the body parsed again, generically, and walked feature by feature
in the Node client's order (shape, unknown, missing, type, non-finite, range; rows in order), so
the answer names every missing or unknown feature at once and reads the same from either runtime::

    row 3: feature `brandFit`: value 1.5 is outside [0, 1]
    missing features `brandFit`, `budgetAlignment` (expected 19 features, got 17)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt

from ml_matching.contract.features import FLOAT32_MAX, Feature, FeatureSet, number_text

BATCH_KEY = "instances"
UNITS_KEY = "units"  # one unit key per row, for an experiment's assignment
_NOT_JSON_NUMBER = re.compile(rb"""(?<![\w"])(-?Infinity|NaN)(?![\w"])""")


def row_type(fs: FeatureSet, name: str = "PredictRequest") -> type[msgspec.Struct]:
    """A Struct with one float field per feature, bounded where the feature set declares bounds."""
    fields = [
        (f.name, Annotated[float, msgspec.Meta(ge=lo, le=hi, description=f.description or None)])
        for f, (lo, hi) in zip(fs.features, map(model_range, fs.features), strict=True)
    ]
    return msgspec.defstruct(name, fields, forbid_unknown_fields=True)


class _Overflow(float):
    """A JSON number literal beyond the float range (decoded as ±inf), with its text."""

    text: str


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        big = _Overflow(value)
        big.text = text
        return big
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(body: bytes) -> Any:
    """The body as Python values; raises ValueError for anything the walk cannot read."""
    try:
        return json.loads(body, parse_float=_parse_float, parse_constant=_reject_constant)
    except RecursionError:  # thousands of nested arrays: msgspec's own message will do
        raise ValueError("nested too deeply") from None


def explain_row(body: bytes, fs: FeatureSet) -> str | None:
    """The first problem of a ``/predict`` body, or None if this walk finds none."""
    try:
        return row_problem(_parse(body), fs)
    except ValueError:
        return None


def explain_batch(body: bytes, fs: FeatureSet, max_rows: int) -> str | None:
    """The first problem of a ``/predict/batch`` body, or None if this walk finds none."""
    try:
        data = _parse(body)
    except ValueError:
        return None
    problem = _wrapper_problem(data, fs, max_rows)
    if problem:
        return problem
    for i, row in enumerate(data[BATCH_KEY]):
        problem = row_problem(row, fs)
        if problem:
            return f"row {i}: {problem}"
    return None


def not_json(body: bytes) -> str | None:
    """The "malformed JSON" message when ``body`` is not JSON at all, else None. Decoding into a
    schema stops at the first problem it meets: ``{"a":`` is refused for its unknown field, not for
    being cut off, unless this is asked first."""
    try:
        msgspec.json.decode(body)
    except msgspec.ValidationError:  # JSON, only a number out of range: the walk words it
        return None
    except msgspec.DecodeError as exc:
        return malformed(str(exc), body)
    except RecursionError:  # nested past msgspec's depth: the schema's message will do
        return None
    return None


def malformed(message: str, body: bytes) -> str:
    """msgspec's "JSON is malformed" message, with a hint where the body holds NaN or Infinity."""
    text = f"malformed JSON: {message.removeprefix('JSON is malformed: ')}"
    if _NOT_JSON_NUMBER.search(body):
        text += "; NaN and Infinity are not JSON numbers (send a finite number)"
    return text


def _wrapper_problem(data: Any, fs: FeatureSet, max_rows: int) -> str | None:
    wanted = f'expected {{"{BATCH_KEY}": [row, ...]}}'
    if not isinstance(data, dict):
        hint = ': wrap the rows as {"instances": [...]}' if isinstance(data, list) else ""
        return f"{wanted}, got {kind(data)}{hint}"
    if BATCH_KEY not in data:
        if set(data) & set(fs.names):
            return (
                f"{wanted}, got one row of features: score it with POST /predict, "
                'or send it as {"instances": [row]}'
            )
        return f"{wanted}: missing field `{BATCH_KEY}`"
    extra = sorted(k for k in data if k not in (BATCH_KEY, UNITS_KEY))
    if extra:
        return f'unknown field `{extra[0]}` ({wanted}, and "{UNITS_KEY}": [key, ...] under an experiment)'
    rows = data[BATCH_KEY]
    if not isinstance(rows, list):
        return f"`{BATCH_KEY}` must be a list of rows, got {kind(rows)}"
    if not rows:
        return f"`{BATCH_KEY}` is empty: send at least 1 row"
    if len(rows) > max_rows:
        return f"`{BATCH_KEY}` has {len(rows)} rows, more than MAX_BATCH_ROWS ({max_rows})"
    return _units_problem(data.get(UNITS_KEY, None), len(rows))


def _units_problem(units: Any, rows: int) -> str | None:
    """``units`` (absent, or one non-empty text key per row) as ``/predict/batch`` takes it."""
    if units is None:
        return None
    if not isinstance(units, list):
        return f"`{UNITS_KEY}` must be a list of unit keys, got {kind(units)}"
    for i, key in enumerate(units):
        if not isinstance(key, str) or not key:
            wanted = "a non-empty text key (a brand id, a pair id)"
            return f"`{UNITS_KEY}` key {i}: expected {wanted}, got {kind(key)}"
    if len(units) != rows:
        return f"`{UNITS_KEY}` has {len(units)} keys for {rows} instances: one per row, in order"
    return None


def row_problem(row: Any, fs: FeatureSet, scored: bool = False) -> str | None:
    """The first problem of one decoded row, or None when it is a valid row of ``fs``; ``scored``:
    its values are those a model scored, each rounded to float32 (see :func:`value_problem`)."""
    if not isinstance(row, dict):
        return f"expected an object of features, got {kind(row)}"
    known = set(fs.names)
    unknown = [k for k in row if k not in known]
    if unknown:
        return f"unknown {_names('feature', unknown)} (the model has {len(fs)} features)"
    missing = [n for n in fs.names if n not in row]
    if missing:
        return f"missing {_names('feature', missing)} (expected {len(fs)} features, got {len(row)})"
    for feature in fs.features:
        problem = value_problem(row[feature.name], feature, scored)
        if problem:
            return f"feature `{feature.name}`: {problem}"
    return None


def first_bad_row(
    rows: Sequence[Mapping[str, float]], fs: FeatureSet, scored: bool = False
) -> tuple[int, str] | None:
    """The first of ``rows`` that is not a valid row of ``fs``, with :func:`row_problem`'s reason;
    None when every row is valid. ``scored``: the rows hold what a model scored, float32 values
    (the prediction ledger's), checked as :func:`value_problem` checks them.

    Checked at once with numpy (the trainer checks every ledger row, 1,000 to a batch: a loop over
    each value cost it more than storing the rows); the reason comes from the loop, for that row only.
    """
    names = fs.names
    keys = dict.fromkeys(names).keys()
    try:
        if any(row.keys() != keys for row in rows):
            raise KeyError  # unknown or missing features: row_problem names them
        # Numbers only (numpy would read "0.5" and True as numbers): msgspec checks them in C.
        checked = msgspec.convert(rows, list[dict[str, float]], strict=True)
        x = np.array([[row[n] for n in names] for row in checked], dtype=np.float64)
    except (KeyError, msgspec.ValidationError):
        return _first_problem(rows, fs, scored)
    x = x.reshape(len(rows), len(names))
    low, high = model_bounds(fs)
    ok = np.isfinite(x) & (x >= low) & (x <= high)
    if scored and not ok.all():
        with np.errstate(over="ignore"):  # beyond float32's range: infinite there, refused below
            x32, low32, high32 = x.astype(np.float32), low.astype(np.float32), high.astype(np.float32)
        ok = np.isfinite(x) & (np.abs(x) <= FLOAT32_MAX) & (x32 >= low32) & (x32 <= high32)
    return None if ok.all() else _first_problem(rows, fs, scored)


def _first_problem(
    rows: Sequence[Mapping[str, float]], fs: FeatureSet, scored: bool = False
) -> tuple[int, str] | None:
    for i, row in enumerate(rows):
        problem = row_problem(row, fs, scored)
        if problem:
            return i, problem
    return None


def value_problem(value: Any, feature: Feature, scored: bool = False) -> str | None:
    """Why ``value`` cannot be ``feature``'s value: not a number, not finite, or out of range.

    ``scored``: ``value`` is one a model scored, the float32 rounding of a value that passed this
    check (the runtimes record those in the prediction ledger). A bound float32 cannot hold, such
    as 0.1, rounds the same way: the value sent as 0.1 is recorded as 0.10000000149011612, above a
    ``max`` of 0.1. So it is compared as float32, with the bounds rounded alike.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {kind(value)}"
    if isinstance(value, _Overflow):
        return f"number {_cut(value.text)} is not finite (out of float range)"
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits (at most 4,300: Python's limit)
        return f"number {_cut(str(value))} is not finite (out of float range)"
    if not math.isfinite(number):
        return f"value {number_text(number)} is not a finite number"
    if abs(number) > FLOAT32_MAX:
        return f"value {number_text(number)} is not a finite number in float32, which the model computes in"
    problem = feature.range_problem(number)
    if problem is not None and scored and _within_as_float32(number, feature):
        return None
    return problem


def _within_as_float32(value: float, feature: Feature) -> bool:
    low, high = model_range(feature)
    return bool(np.float32(low) <= np.float32(value) <= np.float32(high))


def model_bounds(fs: FeatureSet) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Every feature's :func:`model_range`, in order, as two arrays (lows, highs) for bulk checks."""
    low, high = np.array([model_range(f) for f in fs.features], dtype=np.float64).reshape(-1, 2).T
    return low, high


def model_range(feature: Feature) -> tuple[float, float]:
    """The values ``feature`` may take: its declared range, within float32's."""
    low = -FLOAT32_MAX if feature.min is None else max(feature.min, -FLOAT32_MAX)
    high = FLOAT32_MAX if feature.max is None else min(feature.max, FLOAT32_MAX)
    return low, high


def _names(noun: str, names: Sequence[str]) -> str:
    listed = ", ".join(f"`{n}`" for n in names[:10])
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return f"{noun}{'s' if len(names) > 1 else ''} {listed}{more}"


def _cut(text: str, shown: int = 40) -> str:
    """A number as an error quotes it: the digits sent may run to megabytes, the answer need not."""
    return text if len(text) <= shown else f"{text[:shown]}… ({len(text):,} characters)"


def kind(value: Any) -> str:
    """How a value reads in an error message (the Node client's ``kind``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        shown = value[:40] + "…" if len(value) > 40 else value
        return f"a string {json.dumps(shown, ensure_ascii=False)}"
    return "a number"
