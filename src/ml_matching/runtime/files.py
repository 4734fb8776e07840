"""Row files for batch scoring, read and written a chunk at a time: CSV, JSON Lines and Parquet.

The format is the file's suffix (:data:`SUFFIXES`). A reader yields :class:`Chunk` s of at most
``chunk_rows`` lines (a Parquet file: rows): the valid rows' features, the valid rows as read (the
writer writes them back unchanged, the new columns appended), and the refused rows as
:class:`Reject` s, each with its 1-based line (a CSV's header is line 1; for Parquet, the row's
position) and the reason (:mod:`.rows`).

CSV lines without a quote are read in bulk (``numpy.loadtxt`` on the feature columns) and written
back as they were; a chunk with quotes, or a cell that is not a number, goes through the ``csv``
module, where a quoted field may span lines. Parquet files: :mod:`.parquet`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import msgspec
import numpy as np

from ml_matching.contract import FeatureSet, InvalidInput
from ml_matching.contract.commandline import suffix_shown
from ml_matching.runtime.rows import Checked, Floats, JsonRows, check_csv, check_floats, taken

Format = Literal["csv", "jsonl", "parquet"]
SUFFIXES: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
Lines = list[tuple[int, bytes]]


class Reject(msgspec.Struct):
    """One line of the rejects file: where the row is, why it was refused, and the row as read."""

    line: int
    reason: str
    input: Any


@dataclass
class Chunk:
    """Rows read: the valid rows' features, those rows as read (for the writer), the refused rows,
    how many rows there were, and how far into the file (0 to 1) the reader got."""

    x: Floats
    kept: Any
    rejects: list[Reject]
    rows: int
    done: float


def file_format(path: Path, option: str) -> Format:
    """The format of ``path`` by its suffix; InvalidInput naming ``option`` when it has none we read."""
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        got = suffix_shown(path)
        raise InvalidInput(
            f"{option} {path}: the format is chosen by the suffix, got {got}; expected {', '.join(SUFFIXES)}"
        )
    return found


def columns_at(where: str, names: Sequence[str], fs: FeatureSet, reserved: Sequence[str]) -> list[int]:
    """Where each feature's column is among ``names``; InvalidInput for a name that repeats, a
    column the output adds, or a feature without a column."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(f"{where}: column `{twice[0]}` appears twice")
    clash = {n for n in reserved if n in names}
    if clash:
        raise InvalidInput(f"{where}: {taken(clash, 'it has the column' + ('s' if len(clash) > 1 else ''))}")
    missing = [n for n in fs.names if n not in names]
    if missing:
        shown = ", ".join(f"`{n}`" for n in missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        plural = "s" if len(missing) > 1 else ""
        raise InvalidInput(
            f"{where}: no column for feature{plural} {shown} (the model has {len(fs)} features)"
        )
    return [list(names).index(n) for n in fs.names]


# --- CSV -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvLayout:
    """A CSV file's header and where the features are in it."""

    header: list[str]
    at: list[int]

    @classmethod
    def read(cls, path: Path, fs: FeatureSet, reserved: Sequence[str]) -> CsvLayout:
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                header = next(csv.reader(fh), None)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InvalidInput(f"--in {path}: cannot read the CSV header: {exc}") from None
        if not header:
            raise InvalidInput(f"--in {path}: empty CSV (expected a header row on line 1)")
        return cls(header, columns_at(f"--in {path}", [h.strip() for h in header], fs, reserved))


@dataclass
class RawLines:
    """Valid CSV lines as read (no quotes in them): written back as they are."""

    lines: list[bytes]


def csv_chunk(
    lines: Lines, more: Iterator[tuple[int, bytes]], layout: CsvLayout, fs: FeatureSet
) -> tuple[Checked, Any, list[Reject]]:
    """Check CSV ``lines`` (numbered); a quoted field open at the end continues into ``more``."""
    width = len(layout.header)
    rows = [(n, raw) for n, raw in lines if raw.strip()]
    text = [raw for _, raw in rows]
    if not any(b'"' in raw for raw in text) and all(raw.count(b",") == width - 1 for raw in text):
        x = _bulk(text, layout.at, len(fs))
        if x is not None:
            checked = check_floats(x, fs)
            rejects = [
                Reject(rows[i][0], why, _as_read(layout.header, text[i].decode().rstrip("\r\n").split(",")))
                for i, why in checked.refused
            ]
            return checked, RawLines([text[i] for i in np.flatnonzero(checked.ok).tolist()]), rejects
    records = csv_records(lines, more)
    cells = [c for _, c in records]
    checked = check_csv(cells, width, layout.at, fs)
    rejects = [Reject(records[i][0], why, _as_read(layout.header, cells[i])) for i, why in checked.refused]
    return checked, [cells[i] for i in np.flatnonzero(checked.ok).tolist()], rejects


def _bulk(lines: list[bytes], at: list[int], width: int) -> Floats | None:
    """The feature columns of quote-free lines, or None when a cell is not a number."""
    if not lines:
        return np.empty((0, width))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt's "input contained no data" and the like
            text = [raw.decode() for raw in lines]
            x = np.loadtxt(text, delimiter=",", usecols=at, dtype=np.float64, comments=None, ndmin=2)
    except (ValueError, UnicodeDecodeError):
        return None
    return x if x.shape == (len(lines), width) else None


def csv_records(lines: Lines, more: Iterator[tuple[int, bytes]]) -> list[tuple[int, list[str]]]:
    """The records of ``lines`` (numbered) and the line each starts on, through the ``csv`` module;
    a quoted field still open at their end goes on into ``more``."""
    consumed = 0

    def feed() -> Iterator[str]:
        nonlocal consumed
        for n, raw in itertools.chain(lines, more):
            consumed += 1
            try:
                yield raw.decode()
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"line {n}: not UTF-8: {exc}") from None

    reader = csv.reader(feed())
    out, seen, first = [], 0, lines[0][0]
    for cells in reader:
        if cells and not (len(cells) == 1 and not cells[0].strip()):  # a blank line, spaces or not
            out.append((first + seen, cells))
        seen = reader.line_num
        if consumed >= len(lines):  # the chunk's last record ended; a field open there went on
            break
    return out


def _as_read(header: Sequence[str], cells: Sequence[str]) -> Any:
    return dict(zip(header, cells, strict=True)) if len(cells) == len(header) else list(cells)


def _numbered(fh: BinaryIO, first: int) -> Iterator[tuple[int, bytes]]:
    return zip(itertools.count(first), iter(fh.readline, b""), strict=False)


def read_csv(path: Path, fs: FeatureSet, chunk_rows: int, reserved: Sequence[str]) -> Iterator[Chunk]:
    """The chunks of a CSV file; ``kept`` is :class:`RawLines` or the valid records' cells."""
    layout = CsvLayout.read(path, fs, reserved)
    total = max(path.stat().st_size, 1)
    with open(path, "rb") as fh:
        fh.readline()  # the header, line 1
        numbered = _numbered(fh, 2)
        try:
            while lines := list(itertools.islice(numbered, chunk_rows)):
                checked, kept, rejects = csv_chunk(lines, numbered, layout, fs)
                yield Chunk(checked.x, kept, rejects, len(checked.ok), min(fh.tell() / total, 1.0))
        except csv.Error as exc:
            raise InvalidInput(f"--in {path}: cannot read as CSV: {exc}") from None
        except InvalidInput as exc:
            raise InvalidInput(f"--in {path}: {exc}") from None


class CsvWriter:
    """The input's header and cells, then the new columns (``repr`` of each float: exact)."""

    def __init__(self, fh: BinaryIO, header: Sequence[str], added: Sequence[str]) -> None:
        self._fh = fh
        self._write_text([[*header, *added]])

    def _write_text(self, rows: Iterable[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        self._fh.write(buffer.getvalue().encode())

    def write(self, kept: RawLines | list[list[str]], added: dict[str, Floats]) -> None:
        new = zip(*(a.tolist() for a in added.values()), strict=True)
        if isinstance(kept, RawLines):
            self._fh.write(
                b"".join(
                    raw.rstrip(b"\r\n") + b"," + ",".join(map(repr, values)).encode() + b"\n"
                    for raw, values in zip(kept.lines, new, strict=True)
                )
            )
        else:
            self._write_text(cells + list(values) for cells, values in zip(kept, new, strict=True))


# --- JSON Lines ------------------------------------------------------------------------------------


def jsonl_chunk(lines: Lines, checker: JsonRows) -> tuple[Checked, list[bytes], list[Reject]]:
    """Check numbered JSON Lines; blank lines are no rows."""
    rows = [(n, raw) for n, raw in lines if raw.strip()]
    text = [raw.removeprefix(b"\xef\xbb\xbf") if n == 1 else raw for n, raw in rows]  # a BOM
    checked = checker.check(text)
    rejects = [
        Reject(rows[i][0], why, text[i].rstrip(b"\r\n").decode(errors="replace"))
        for i, why in checked.refused
    ]
    return checked, [text[i] for i in np.flatnonzero(checked.ok).tolist()], rejects


def read_jsonl(path: Path, fs: FeatureSet, chunk_rows: int, reserved: Sequence[str]) -> Iterator[Chunk]:
    """The chunks of a JSON Lines file; ``kept`` is the valid lines, as read."""
    total = max(path.stat().st_size, 1)
    checker = JsonRows(fs, reserved)
    with open(path, "rb") as fh:
        numbered = _numbered(fh, 1)
        while lines := list(itertools.islice(numbered, chunk_rows)):
            checked, kept, rejects = jsonl_chunk(lines, checker)
            yield Chunk(checked.x, kept, rejects, len(checked.ok), min(fh.tell() / total, 1.0))


class JsonlWriter:
    """Each valid line as read, the new fields added at the end of its object."""

    def __init__(self, fh: BinaryIO, added: Sequence[str]) -> None:
        self._fh = fh
        self._keys = [json.dumps(a).encode() + b":" for a in added]

    def write(self, kept: list[bytes], added: dict[str, Floats]) -> None:
        new = zip(*(a.tolist() for a in added.values()), strict=True)
        keys = self._keys
        self._fh.write(
            b"".join(
                line.rstrip()[:-1]
                + b","
                + b",".join(k + repr(v).encode() for k, v in zip(keys, values, strict=True))
                + b"}\n"
                for line, values in zip(kept, new, strict=True)
            )
        )


# --- files -----------------------------------------------------------------------------------------


def temporary(path: Path, folder: bool = False) -> Path:
    """A new temporary file (or folder) beside ``path``, for :func:`replacing` and the Dask output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.tmp-{os.getpid()}-"
    if folder:
        return Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix))
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """A temporary binary file beside ``path``, flushed to disk when the block ends; removed if it
    ends with an error, so nothing half-written is ever under the final name. :func:`commit`
    renames it into place."""
    tmp = temporary(path)
    try:
        with open(tmp, "wb") as fh:
            yield fh, tmp
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def commit(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file into place."""
    os.replace(tmp, path)
