"""Checking the rows of a file (or a Dask partition) before they are scored, a chunk at a time.

Each check takes a chunk's rows as they were read and gives a :class:`Checked`: the valid rows'
features (float64, feature order), which rows those are, and the others' reasons. The common case
is checked in bulk (NumPy, one msgspec decode per chunk); only a refused row is walked one value at
a time, by :func:`ml_matching.contract.validation.row_problem` / ``explain_row``, so its reason reads
as the API's 400 would for the same features::

    feature `brandFit`: value 1.5 is outside [0, 1]
    missing features `brandFit`, `budgetAlignment` (expected 19 features, got 17)

Fields other than the features pass through, so they are never "unknown features"; a field the
output adds (``score``, ...) is refused instead of overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from ml_matching.contract import FeatureSet
from ml_matching.contract.validation import explain_row, malformed, model_bounds, row_problem

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


@dataclass
class Checked:
    """A chunk's rows checked: ``x`` holds the valid ones (where ``ok``), ``refused`` the others'
    indices and reasons, in order."""

    x: Floats
    ok: Mask
    refused: list[tuple[int, str]]


def in_range(x: Floats, fs: FeatureSet) -> Mask:
    """Rows whose every value is finite and within its feature's declared range (and float32's)."""
    lo, hi = model_bounds(fs)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(x).all(axis=1) & (x >= lo).all(axis=1) & (x <= hi).all(axis=1)
    return np.asarray(good, dtype=np.bool_)


def taken(names: AbstractSet[str], what: str = "the row has") -> str:
    """The reason for input that already has a column the output adds."""
    listed = ", ".join(f"`{n}`" for n in sorted(names))
    return f"{what} {listed}, which scoring writes: rename or drop {'them' if len(names) > 1 else 'it'}"


def _problem(values: Any, fs: FeatureSet) -> str:
    # The bulk check refused this row, so the walk finds its problem; the fallback is never worded.
    return row_problem(values, fs) or "refused"


# --- text cells (CSV) ------------------------------------------------------------------------------


def cell(text: str) -> Any:
    """A CSV cell as a JSON body would carry it: a number, null when empty, else the text."""
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return text


def check_text(columns: Sequence[Sequence[str]], fs: FeatureSet) -> Checked:
    """Check the features' text cells (``columns[j]``: feature j's cell of each row)."""
    n = len(columns[0]) if columns else 0
    x = np.empty((n, len(fs)), dtype=np.float64)
    for j, cells in enumerate(columns):
        try:
            x[:, j] = np.array(cells, dtype=np.float64)
        except ValueError:  # a cell that is not a number: this column one cell at a time
            x[:, j] = [v if isinstance(v := cell(c), float) else np.nan for c in cells]
    return _checked(x, fs, lambda i: {f.name: cell(columns[j][i]) for j, f in enumerate(fs.features)})


def check_floats(x: Floats, fs: FeatureSet) -> Checked:
    """Check rows already read as numbers (``x``: one column per feature, in order)."""
    return _checked(x, fs, lambda i: dict(zip(fs.names, x[i].tolist(), strict=True)))


def _checked(x: Floats, fs: FeatureSet, row: Any) -> Checked:
    good = in_range(x, fs)
    refused = [(i, _problem(row(i), fs)) for i in np.flatnonzero(~good).tolist()]
    return Checked(x[good], good, refused)


def check_csv(rows: Sequence[Sequence[str]], width: int, at: Sequence[int], fs: FeatureSet) -> Checked:
    """Check CSV records: ``width`` cells each (the header's), the features in columns ``at``."""
    shaped = [i for i, cells in enumerate(rows) if len(cells) == width]
    refused = [(i, shape_problem(len(cells), width)) for i, cells in enumerate(rows) if len(cells) != width]
    columns = list(zip(*(rows[i] for i in shaped), strict=True)) if shaped else [() for _ in range(width)]
    inner = check_text([columns[c] for c in at], fs)
    ok = np.zeros(len(rows), dtype=np.bool_)
    ok[np.array(shaped, dtype=np.intp)[inner.ok]] = True
    refused += [(shaped[i], why) for i, why in inner.refused]
    return Checked(inner.x, ok, sorted(refused))


def shape_problem(cells: int, width: int) -> str:
    return f"expected {width} cells (as the header has), got {cells}"


# --- JSON Lines ------------------------------------------------------------------------------------


class JsonRows:
    """Checks JSON Lines rows against one feature set; ``reserved`` fields are refused."""

    def __init__(self, fs: FeatureSet, reserved: Sequence[str]) -> None:
        self.fs = fs
        self.reserved = frozenset(reserved)
        # The features (numbers, any other field ignored) and the reserved fields, to see them.
        fields: list[Any] = [(f"f{j}", float) for j in range(len(fs))]
        fields += [(f"r{k}", Any, msgspec.UNSET) for k in range(len(reserved))]
        rename = {f"f{j}": n for j, n in enumerate(fs.names)} | {f"r{k}": n for k, n in enumerate(reserved)}
        row = msgspec.defstruct("ScoredRow", fields, rename=rename)
        self._chunk = msgspec.json.Decoder(list[row]).decode  # type: ignore[valid-type]  # built at run time
        self._width = len(fs)
        self._reserved = len(reserved)

    def check(self, lines: Sequence[bytes]) -> Checked:
        """Check non-blank lines: one msgspec decode for them all, line by line only if that fails."""
        rows = self._decode(lines)
        if rows is None:  # a bad line among them (or two objects on one line)
            rows = [one[0] if (one := self._decode([line])) else None for line in lines]
        w, unset, astuple = self._width, msgspec.UNSET, msgspec.structs.astuple
        values = [astuple(r) if r is not None else None for r in rows]
        missing = (np.nan,) * w
        x = np.array([v[:w] if v is not None else missing for v in values], dtype=np.float64)
        good = in_range(x.reshape(len(lines), w), self.fs)
        if self._reserved:  # a row that already has a field the output adds
            good &= np.array([v is None or all(u is unset for u in v[w:]) for v in values], dtype=np.bool_)
        refused = [(i, self.reason(lines[i])) for i in np.flatnonzero(~good).tolist()]
        return Checked(x.reshape(len(lines), w)[good], good, refused)

    def _decode(self, lines: Sequence[bytes]) -> list[Any] | None:
        try:
            rows = self._chunk(b"[" + b",".join(lines) + b"]")
        except msgspec.DecodeError:
            return None
        return rows if len(rows) == len(lines) else None

    def reason(self, line: bytes) -> str:
        """Why one line is refused, worded by the API's walk over the line's features."""
        try:
            row = msgspec.json.decode(line)
        except msgspec.ValidationError:  # a number beyond float (1e999): the walk names it
            return self._walk(line)
        except msgspec.DecodeError as exc:
            return malformed(str(exc), line)
        if type(row) is not dict:
            return _problem(row, self.fs)
        clash = self.reserved.intersection(row)
        if clash:
            return taken(clash)
        return self._walk(line)

    def _walk(self, line: bytes) -> str:
        """``explain_row`` on the line's features alone, each value as written."""
        row = json.loads(line, parse_float=_Literal, parse_int=_Literal)
        if type(row) is not dict:
            return _problem(row, self.fs)
        known = set(self.fs.names)
        body = ",".join(
            f"{json.dumps(k)}:{v if isinstance(v, _Literal) else json.dumps(v)}"
            for k, v in row.items()
            if k in known
        )
        return explain_row(("{" + body + "}").encode(), self.fs) or "refused"


class _Literal(str):
    """A JSON number's text, as written (``1e999`` stays ``1e999``)."""

    __slots__ = ()


# --- numeric columns (Parquet, a Dask partition) ---------------------------------------------------


def check_numbers(columns: Sequence[Floats], nulls: Sequence[Mask], fs: FeatureSet) -> Checked:
    """Check numeric feature columns: nulls, non-finite and out-of-range values are refused."""
    n = len(columns[0]) if columns else 0
    x = np.column_stack(columns).astype(np.float64, copy=False) if columns else np.empty((n, 0))
    null = np.column_stack(nulls) if nulls else np.zeros((n, 0), dtype=np.bool_)

    def row(i: int) -> dict[str, Any]:
        return {f.name: None if null[i, j] else float(x[i, j]) for j, f in enumerate(fs.features)}

    return _checked(np.where(null, np.nan, x), fs, row)
