"""Loading and validating collaboration outcomes.

Three formats, chosen by suffix:

- ``.json``: the original service's ``/train`` body:
  ``{"features": [{name: value, ...}], "outcomes": [true, ...]}``
- ``.jsonl`` / ``.ndjson``: JSON Lines, one ``{...features, "outcome": bool}`` per line
- ``.csv``: a header of the feature columns and ``outcome``

An outcome is ``true``/``false``, ``1``/``0``, or (in any case) the strings ``"true"``/``"false"``,
``"1"``/``"0"``, ``"yes"``/``"no"``.

Every problem raises :class:`DataError` with one line naming the file, the row (1-based) or column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ml_matching.contract import Feature, FeatureSet, number_text
from ml_matching.contract.commandline import suffix_shown
from ml_matching.contract.features import FLOAT32_MAX
from ml_matching.training.errors import DataError

MIN_ROWS = 50  # the original service's minimum before training
SUFFIXES = {
    ".json": "the original service's /train body",
    ".jsonl": "JSON Lines",
    ".ndjson": "JSON Lines",
    ".csv": "CSV",
}
OUTCOME = "outcome"
NAMES_SHOWN = 20  # column names an error lists before "and N more" (a feature set of 19 is listed whole)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class Dataset:
    """Validated outcomes: ``x`` in feature-set column order, ``y`` as 0/1."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    sha256: str
    source: str
    #: What drew the rows, when a generator did (``synth`` writes it into the file): the sidecar
    #: and the model card then say the model learned from synthetic outcomes.
    generator: str | None = None

    @property
    def rows(self) -> int:
        return int(self.y.shape[0])


def load_dataset(path: str | Path, feature_set: FeatureSet) -> Dataset:
    """Read and validate an outcomes file against ``feature_set``.

    Raises
    ------
    DataError
        Unreadable file, missing/unknown column, non-numeric or non-finite value, value out of the
        feature's range, outcome not boolean/0/1, a single class, or fewer than 50 rows.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(f"{k} ({v})" for k, v in SUFFIXES.items())
        got = suffix_shown(path)
        raise DataError(
            f"{path}: the data format is chosen by the file's suffix, got {got}; expected {known}"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    return parse_dataset(raw, suffix, feature_set, where=str(path), source=path.name)


def parse_dataset(raw: bytes, suffix: str, feature_set: FeatureSet, *, where: str, source: str) -> Dataset:
    """Validate outcomes in the format of ``suffix`` (see :data:`SUFFIXES`); messages start with ``where``.

    Raises
    ------
    DataError
        As :func:`load_dataset`.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: cannot read: {exc}") from None
    records, generator = _records(where, suffix, text)
    x, y = _to_arrays(where, records, feature_set)
    _check_shape(where, y)
    return Dataset(x=x, y=y, sha256=hashlib.sha256(raw).hexdigest(), source=source, generator=generator)


Records = Iterator[tuple[int, Mapping[str, Any], Any]]


def _records(path: str, suffix: str, text: str) -> tuple[Records, str | None]:
    """The rows of the file, and the generator that drew them when the file says so."""
    if suffix == ".csv":
        return _csv_records(path, text), None
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_records(path, text), None
    body = _loads(text, path)
    generator = body.get("generator") if isinstance(body, dict) else None
    return _body_records(path, body), generator if isinstance(generator, str) else None


def _loads(text: str, where: str) -> Any:
    """JSON ``text``, or DataError naming ``where`` and what is wrong."""
    try:
        return json.loads(text, object_pairs_hook=_once_each)
    except _Repeated as exc:
        raise DataError(
            f"{where}: the key `{exc.args[0]}` appears twice in one object (one would silently win)"
        ) from None
    except ValueError as exc:  # also an integer literal past Python's 4,300-digit conversion limit
        raise DataError(f"{where}: not valid JSON: {exc}") from None
    except RecursionError:  # json's decoder recurses per level
        raise DataError(f"{where}: not valid JSON: nested too deep") from None


class _Repeated(Exception):
    """A key repeated in one JSON object (raised by :func:`_once_each`)."""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's dict, refusing a repeated key: a CSV header naming a column twice is refused
    for the same reason."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)
    return found


def _body_records(path: str, body: Any) -> Records:
    if not isinstance(body, dict) or not {"features", "outcomes"} <= body.keys():
        raise DataError(f'{path}: expected an object with "features" and "outcomes" lists')
    features, outcomes = body["features"], body["outcomes"]
    if not isinstance(features, list) or not isinstance(outcomes, list):
        raise DataError(f'{path}: "features" and "outcomes" must be lists')
    if len(features) != len(outcomes):
        raise DataError(f"{path}: {len(features)} feature rows but {len(outcomes)} outcomes")
    for i, (row, outcome) in enumerate(zip(features, outcomes, strict=True), start=1):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i}: expected an object of features, got {type(row).__name__}")
        yield i, row, outcome


def _jsonl_records(path: str, text: str) -> Iterator[tuple[int, Mapping[str, Any], Any]]:
    for i, line in enumerate((ln for ln in text.splitlines() if ln.strip()), start=1):
        row = _loads(line, f"{path}: row {i}")
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i}: expected an object, got {type(row).__name__}")
        if OUTCOME not in row:
            raise DataError(f"{path}: row {i}: missing `{OUTCOME}`")
        yield i, {k: v for k, v in row.items() if k != OUTCOME}, row[OUTCOME]


def _csv_records(path: str, text: str) -> Iterator[tuple[int, Mapping[str, Any], Any]]:
    # newline="": the csv module's own line handling, so old Mac files (\r alone) read too.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        yield from _csv_rows(path, reader)
    except csv.Error as exc:  # an unclosed quote, a field past the csv module's size limit
        raise DataError(f"{path}: line {reader.line_num}: not valid CSV: {exc}") from None


def _csv_rows(path: str, reader: Any) -> Iterator[tuple[int, Mapping[str, Any], Any]]:
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: empty CSV (expected a header row)")
    if header[0].lstrip().startswith(("{", "[")):  # e.g. `synth`'s JSON saved under a .csv name
        raise DataError(f"{path}: the file holds JSON, not CSV: name it .json (the /train body) or .jsonl")
    header = [h.strip() for h in header]
    twice = sorted(name for name, n in Counter(header).items() if n > 1)
    if twice:  # a row is read by column name: one copy would silently win
        raise DataError(f"{path}: the header names more than once: {_quoted(twice)}")
    if OUTCOME not in header:
        raise DataError(f"{path}: missing column `{OUTCOME}`")
    at = header.index(OUTCOME)
    for i, cells in enumerate((c for c in reader if c), start=1):
        if len(cells) != len(header):
            raise DataError(f"{path}: row {i}: {len(cells)} cells, header has {len(header)}")
        row = {h: c for j, (h, c) in enumerate(zip(header, cells, strict=True)) if j != at}
        yield i, row, cells[at]


def _to_arrays(
    path: str, records: Iterable[tuple[int, Mapping[str, Any], Any]], fs: FeatureSet
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    names = fs.names
    known = set(names)
    xs: list[list[float]] = []
    ys: list[int] = []
    for i, row, outcome in records:
        if len(row) != len(names) or row.keys() != known:
            _raise_columns(path, i, row, names)
        xs.append([_value(path, i, f, row[f.name]) for f in fs.features])
        ys.append(_outcome(path, i, outcome))
    return np.array(xs, dtype=np.float64).reshape(len(xs), len(names)), np.array(ys, dtype=np.int64)


def _raise_columns(path: str, i: int, row: Mapping[str, Any], names: tuple[str, ...]) -> None:
    known = set(names)
    unknown = [k for k in row if k not in known]
    if unknown:
        raise DataError(f"{path}: row {i}: unknown {_listed(unknown)} (the feature set has {len(names)})")
    missing = [n for n in names if n not in row]
    raise DataError(
        f"{path}: row {i}: missing {_listed(missing)} (expected {len(names)} features, got {len(row)})"
    )


def _listed(names: list[str]) -> str:
    return f"feature{'s' if len(names) > 1 else ''} " + _quoted(names)


def _quoted(names: list[str]) -> str:
    """The first NAMES_SHOWN names, quoted, and how many more: a malformed file may have thousands,
    and an error is read by a person."""
    shown = ", ".join(f"`{n}`" for n in names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return f"{shown} and {more:,} more" if more > 0 else shown


def _value(path: str, i: int, feature: Feature, v: Any) -> float:
    where = f"{path}: row {i}, feature `{feature.name}`"
    if isinstance(v, str):
        try:
            if "_" in v or not v.isascii():  # Python's spellings (1_000, other scripts' digits)
                raise ValueError(v)
            v = float(v)
        except ValueError:
            raise DataError(f"{where}: expected a number, got {v!r}") from None
    elif isinstance(v, bool) or not isinstance(v, int | float):
        raise DataError(f"{where}: expected a number, got {json.dumps(v)}")
    try:
        value = float(v)
    except OverflowError:  # an integer literal of hundreds of digits
        digits = len(str(abs(v)))
        raise DataError(f"{where}: a {digits}-digit integer is beyond the range of a float") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: value {number_text(value)} is not a finite number")
    if abs(value) > FLOAT32_MAX:  # the model scores float32, as the runtime refuses such a value
        raise DataError(f"{where}: value {number_text(value)} is beyond float32's range (±{FLOAT32_MAX:.4g})")
    problem = feature.range_problem(value)
    if problem:
        raise DataError(f"{where}: {problem}")
    return value


def _outcome(path: str, i: int, v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float) and v in (0, 1):
        return int(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return int(v.strip().lower() in _TRUE)
    raise DataError(f'{path}: row {i}: outcome must be true/false, 1/0 or "yes"/"no", got {json.dumps(v)}')


def _check_shape(path: str, y: npt.NDArray[np.int64]) -> None:
    if y.shape[0] < MIN_ROWS:
        raise DataError(f"{path}: {y.shape[0]} rows; training needs at least {MIN_ROWS}")
    positives = int(y.sum())
    if positives in (0, y.shape[0]):
        only = "true" if positives else "false"
        raise DataError(f"{path}: only one class present (every outcome is {only}); need both")
