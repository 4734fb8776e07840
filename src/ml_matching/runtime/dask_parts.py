"""What a Dask worker does for ``ml-matching score --dask``: read a partition, score it, write it.

A partition is a block of whole lines of a CSV or JSON Lines file, or a Parquet row group
(:class:`Part`). :func:`read_part` makes it a pandas DataFrame (``dask.dataframe.from_map``);
:func:`score_part` (``map_partitions``) checks and scores its rows with the same functions as the
local path, writes its part file with the local writers, and returns one row: the rows scored, the
rows refused and their lines of the rejects file.

The version is loaded once per worker process (:func:`worker_scorer`), verified as every load is,
and checked to be the one the client verified (the sha256 of its ``model.onnx``); its onnxruntime
session then serves every partition that process scores. pandas is imported here only.
"""

from __future__ import annotations

import io
import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import numpy as np

from ml_matching.contract import MissingDependency, MLMatchingError, load_dir
from ml_matching.runtime.batch import added_columns, score_rows
from ml_matching.runtime.files import CsvWriter, Format, JsonlWriter, Reject, csv_records
from ml_matching.runtime.parquet import ParquetWriter, arrow_numbers, pyarrow
from ml_matching.runtime.rows import Checked, JsonRows, check_text, shape_problem
from ml_matching.runtime.scoring import Scorer

DASK_HINT = "--dask needs the `dask` extra: `pip install 'ml-matching[dask]'`"
#: A partition's own columns beside the file's: the line, a CSV record that does not fit the header
#: (its cells), a JSON line's text.
LINE, MISFIT, JSON = "__line__", "__misfit__", "__json__"


class WorkerRefused(MLMatchingError):
    """A worker could not load the version the client verified (exit code 1)."""

    code = "artifact_corrupt"


def pandas() -> Any:
    """pandas (with dask), or MissingDependency naming the extra."""
    try:
        import pandas
    except ImportError as exc:
        raise MissingDependency(DASK_HINT) from exc
    return pandas


@dataclass(frozen=True)
class ModelRef:
    """What a worker loads: the version folder, the sha256 the client verified, and its explainer."""

    folder: str
    sha256: str
    explain: bool


@dataclass(frozen=True)
class Part:
    """One partition: a block of whole lines (bytes ``start`` to ``end``) or a Parquet row group."""

    index: int
    first_line: int
    start: int = 0
    end: int = 0
    row_group: int = -1


@dataclass(frozen=True)
class Task:
    """What every partition is scored with: the input, the folder of parts, the version, and for a
    CSV file its header and where the features are in it."""

    path: str
    format: Format
    out: str
    model: ModelRef
    header: tuple[str, ...] = ()
    at: tuple[int, ...] = ()


#: The versions a worker keeps loaded, the most recently loaded: a long-lived cluster scores one
#: version after another, and each kept session holds the whole model (tens of MB for a forest).
SCORERS_KEPT = 2
_SCORERS: dict[ModelRef, Scorer] = {}  # in the order they were loaded
_LOADING = threading.Lock()
#: The versions this process loaded and verified, one entry per load (a test reads it on workers).
LOADS: list[str] = []


def worker_scorer(ref: ModelRef) -> Scorer:
    """This process's scorer of ``ref``: loaded and verified for its first partition only."""
    scorer = _SCORERS.get(ref)
    if scorer is not None:
        return scorer
    with _LOADING:
        if ref not in _SCORERS:
            try:
                model = load_dir(Path(ref.folder), explain="eager" if ref.explain else "off")
            except MLMatchingError as exc:  # as an error that travels back to the client whole
                raise WorkerRefused(f"a worker could not load {ref.folder}: {exc}") from None
            if model.sidecar.onnx.sha256 != ref.sha256:
                raise WorkerRefused(
                    f"a worker sees another {ref.folder} (model.onnx sha256 {model.sidecar.onnx.sha256}, "
                    f"the client verified {ref.sha256}): is the store shared?"
                )
            LOADS.append(ref.folder)
            _SCORERS[ref] = scorer = Scorer(model, max_batch_rows=1)
            while len(_SCORERS) > SCORERS_KEPT:  # a partition still scoring with it keeps its own
                del _SCORERS[next(iter(_SCORERS))]
            return scorer
        return _SCORERS[ref]


def meta(task: Task, schema: Any = None) -> Any:
    """The empty DataFrame :func:`read_part` returns for ``task`` (a Parquet file: its ``schema``)."""
    pd = pandas()
    line = pd.Series([], dtype=np.int64)
    if task.format == "parquet":
        frame = _pandas(schema.empty_table())
        frame[LINE] = line
        return frame
    if task.format == "jsonl":
        return pd.DataFrame({JSON: pd.Series([], dtype=object), LINE: line})
    columns = {h: pd.Series([], dtype=object) for h in task.header}
    return pd.DataFrame({**columns, LINE: line, MISFIT: pd.Series([], dtype=object)})


def read_part(part: Part, task: Task) -> Any:
    """A partition's rows as a DataFrame: the file's columns (CSV cells as text, Parquet columns as
    Arrow types, a JSON line as its text) and each row's line."""
    pd = pandas()
    if task.format == "parquet":
        _, pq = pyarrow()
        source = pq.ParquetFile(task.path)
        table = (
            source.read_row_group(part.row_group)
            if part.row_group >= 0
            else source.schema_arrow.empty_table()
        )
        frame = _pandas(table)
        frame[LINE] = np.arange(part.first_line, part.first_line + len(frame), dtype=np.int64)
        return frame
    with open(task.path, "rb") as fh:
        fh.seek(part.start)
        block = fh.read(part.end - part.start)
    # Lines end at b"\n" only, as the local reader's (bytes.splitlines also cut at a lone \r, which
    # JSON reads as a space and a CSV field may hold).
    lines = list(zip(itertools.count(part.first_line), io.BytesIO(block), strict=False))
    if task.format == "jsonl":
        bom = b"\xef\xbb\xbf"  # at the start of the file, as the local reader strips it
        rows = [
            (n, (raw.removeprefix(bom) if n == 1 else raw).decode(errors="replace"))
            for n, raw in lines
            if raw.strip()
        ]
        return pd.DataFrame({JSON: [r for _, r in rows], LINE: [n for n, _ in rows]}, columns=[JSON, LINE])
    width = len(task.header)
    records = csv_records(lines, iter(())) if lines else []
    frame = pd.DataFrame(
        [cells if len(cells) == width else [None] * width for _, cells in records],
        columns=list(task.header),
        dtype=object,
    )
    frame[LINE] = np.array([n for n, _ in records], dtype=np.int64)
    frame[MISFIT] = pd.Series([None if len(c) == width else c for _, c in records], dtype=object)
    return frame


def _pandas(table: Any) -> Any:
    """A Parquet table as a DataFrame of Arrow types, every column a column: a pandas index saved
    in the file (``df.to_parquet()`` of an indexed frame) would otherwise become the frame's index,
    and be dropped from the part the local output keeps it in."""
    return table.to_pandas(types_mapper=pandas().ArrowDtype, ignore_metadata=True)


def score_part(frame: Any, task: Task, partition_info: dict[str, Any] | None = None) -> Any:
    """Score a partition, write its part file, and return one row: index, scored, rejected, and
    rejects (its lines of the rejects file)."""
    scorer = worker_scorer(task.model)
    index = int(partition_info["number"]) if partition_info else 0
    suffix = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}[task.format]
    with open(Path(task.out) / f"part-{index:05d}{suffix}", "wb") as fh:
        scored, rejects = _Part(scorer, task, fh).write(frame)
    encode = msgspec.json.Encoder(enc_hook=str).encode
    row = {
        "index": [index],
        "scored": [scored],
        "rejected": [len(rejects)],
        "rejects": [b"".join(encode(r) + b"\n" for r in rejects)],
    }
    return pandas().DataFrame(row).astype({"rejects": object})


def result_meta() -> Any:
    """The one-row DataFrame :func:`score_part` returns, empty."""
    return pandas().DataFrame({"index": [0], "scored": [0], "rejected": [0], "rejects": [b""]}).iloc[:0]


class _Part:
    """One partition's rows checked, scored and written to ``fh``."""

    def __init__(self, scorer: Scorer, task: Task, fh: BinaryIO) -> None:
        self.scorer, self.task, self.fh = scorer, task, fh
        self.fs = scorer.model.feature_set
        self.explain = task.model.explain
        self.added = added_columns(scorer.model, self.explain)

    def write(self, frame: Any) -> tuple[int, list[Reject]]:
        lines = frame[LINE].to_numpy()
        writer = {"csv": self._csv, "jsonl": self._jsonl, "parquet": self._parquet}[self.task.format]
        checked, inputs = writer(frame)
        refused = checked.refused
        return len(checked.x), [
            Reject(int(lines[i]), why, inp) for (i, why), inp in zip(refused, inputs, strict=True)
        ]

    def _new(self, checked: Checked) -> dict[str, Any]:
        return score_rows(self.scorer, checked.x, self.explain)

    def _jsonl(self, frame: Any) -> tuple[Checked, list[Any]]:
        text = [t.encode() for t in frame[JSON].tolist()]
        checked = JsonRows(self.fs, self.added).check(text)
        JsonlWriter(self.fh, self.added).write(
            [text[i] for i in np.flatnonzero(checked.ok).tolist()], self._new(checked)
        )
        return checked, [text[i].decode().rstrip("\r\n") for i, _ in checked.refused]

    def _parquet(self, frame: Any) -> tuple[Checked, list[Any]]:
        pa, _ = pyarrow()
        table = pa.Table.from_pandas(frame.drop(columns=[LINE]), preserve_index=False)
        checked = arrow_numbers(pa, table, self.task.path, self.fs)
        writer = ParquetWriter(self.fh, table.schema.remove_metadata(), self.added)
        writer.write(table.filter(pa.array(checked.ok)), self._new(checked))
        writer.close()
        return checked, table.take(pa.array([i for i, _ in checked.refused], type=pa.int64())).to_pylist()

    def _csv(self, frame: Any) -> tuple[Checked, list[Any]]:
        header = list(self.task.header)
        misfit = frame[MISFIT].tolist()  # the cells of a record that does not fit the header, else None
        cells = frame[header].to_numpy(dtype=object)
        fits = np.array([i for i, m in enumerate(misfit) if m is None], dtype=np.intp)
        inner = check_text([cells[fits, c] for c in self.task.at], self.fs)
        ok = np.zeros(len(frame), dtype=np.bool_)
        ok[fits[inner.ok]] = True
        refused = [(int(fits[i]), why) for i, why in inner.refused]
        refused += [(i, shape_problem(len(m), len(header))) for i, m in enumerate(misfit) if m is not None]
        refused.sort()
        CsvWriter(self.fh, header, self.added).write(cells[ok].tolist(), self._new(Checked(inner.x, ok, [])))
        inputs = [misfit[i] or dict(zip(header, cells[i].tolist(), strict=True)) for i, _ in refused]
        return Checked(inner.x, ok, refused), inputs
