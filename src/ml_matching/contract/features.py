"""Feature sets: the named, ordered, optionally bounded columns a model scores.

A feature set is data (``schemas/features.default.json``), not code: training records the set in
the sidecar and the runtime validates requests against the loaded model's set.
"""

from __future__ import annotations

import functools
import json
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from ml_matching.contract.errors import InvalidInput

# Installed wheels carry the schemas inside the package; a source checkout has them at its top.
_HERE = Path(__file__).resolve().parent
_SCHEMA_DIRS = (_HERE / "_schemas", _HERE.parents[2] / "schemas")


def schemas_dir() -> Path:
    """Return the folder holding the JSON Schemas (packaged copy first, then the checkout's)."""
    for folder in _SCHEMA_DIRS:
        if (folder / "features.default.json").is_file():
            return folder
    raise FileNotFoundError(f"schemas not found in {', '.join(map(str, _SCHEMA_DIRS))}")


class Feature(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One input column: its name and, when known, its declared range."""

    name: str
    group: str = ""
    description: str = ""
    min: float | None = None
    max: float | None = None

    def range_problem(self, value: float) -> str | None:
        """Why ``value`` is outside this feature's declared range, or None when it is inside.

        The wording is the same in training, the runtime and the Node client.
        """
        below = self.min is not None and value < self.min
        above = self.max is not None and value > self.max
        if not (below or above):
            return None
        return f"value {number_text(value)} is {range_text(self.min, self.max)}"


def feature_mismatch(fs: FeatureSet, reference: FeatureSet, named: str) -> str | None:
    """Why a version scoring ``fs`` cannot stand beside one scoring ``reference`` (``named``, as
    ``control 20260101_000000``), or None. Versions that answer one request, as an experiment's arms
    or the holdout's two sides do, must check it alike: other features cannot score it, and a
    feature declared over another range would refuse on one side a request the other answers, so
    that a unit's arm would decide whether its request is answered at all."""
    if fs.names != reference.names:
        return f"it scores other features than {named}"
    for mine, theirs in zip(fs.features, reference.features, strict=True):
        if (mine.min, mine.max) != (theirs.min, theirs.max):
            return (
                f"it declares `{mine.name}` over {interval_text(mine.min, mine.max)}, where {named} "
                f"declares {interval_text(theirs.min, theirs.max)}"
            )
    return None


def interval_text(lo: float | None, hi: float | None) -> str:
    """``[0, 1]``, ``[0, Infinity)``, ``(-Infinity, 1]``: a declared range, as the Node client writes it."""
    low = "(-Infinity" if lo is None else f"[{number_text(lo)}"
    high = "Infinity)" if hi is None else f"{number_text(hi)}]"
    return f"{low}, {high}"


#: The largest float32: the model computes in float32, so a value beyond it is infinite there.
FLOAT32_MAX = 3.4028234663852886e38


def number_text(value: float) -> str:
    """A number as JavaScript's ``String(value)`` writes it (``1`` not ``1.0``), for shared wording."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    if 1e-6 <= abs(value) < 1e-4:  # Python writes 1e-05 where JavaScript writes 0.00001
        return format(Decimal(text), "f")
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", text)  # 1e-07 -> 1e-7, as JavaScript writes it


def range_text(lo: float | None, hi: float | None) -> str:
    """``outside [0, 1]``, or ``below the minimum 0`` / ``above the maximum 1`` for one bound."""
    if lo is None:
        return f"above the maximum {number_text(hi)}" if hi is not None else "in range"
    if hi is None:
        return f"below the minimum {number_text(lo)}"
    return f"outside [{number_text(lo)}, {number_text(hi)}]"


class FeatureSet(msgspec.Struct, frozen=True, dict=True):
    """An ordered tuple of features; the order is the ONNX input column order."""

    features: tuple[Feature, ...]

    @functools.cached_property  # read for every ledger row: built once (``dict=True`` holds it)
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def __len__(self) -> int:
        return len(self.features)


def feature_set_from_obj(obj: Any, where: str = "feature set") -> FeatureSet:
    """Build and check a feature set from ``{"features": [...]}`` or a plain list.

    Raises
    ------
    InvalidInput
        When an entry is malformed, a name repeats, or a range is empty or not finite.
    """
    items = obj.get("features") if isinstance(obj, dict) else obj
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"{where}: expected a non-empty list of features")
    try:
        features = msgspec.convert(items, tuple[Feature, ...], strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    _check_features(features, where)
    return FeatureSet(features)


def _check_features(features: tuple[Feature, ...], where: str) -> None:
    seen: set[str] = set()
    for f in features:
        if not f.name.strip():
            raise InvalidInput(f"{where}: a feature has an empty name")
        if f.name in seen:
            raise InvalidInput(f"{where}: feature `{f.name}` appears twice")
        seen.add(f.name)
        for bound in (f.min, f.max):
            if bound is not None and not math.isfinite(bound):
                raise InvalidInput(f"{where}: feature `{f.name}` has a non-finite bound")
        if f.min is not None and f.max is not None and f.min >= f.max:
            raise InvalidInput(f"{where}: feature `{f.name}` has min {f.min} >= max {f.max}")


def load_feature_set(path: str | Path) -> FeatureSet:
    """Read a feature-set JSON file; errors name the file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read feature set: {exc}") from None
    return feature_set_from_obj(obj, where=str(path))


def default_feature_set() -> FeatureSet:
    """The 19 match features, from ``schemas/features.default.json``."""
    return load_feature_set(schemas_dir() / "features.default.json")
