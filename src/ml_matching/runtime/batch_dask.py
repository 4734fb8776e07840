"""``ml-matching score --dask ADDRESS``: the same scoring, a partition per task on a Dask cluster.

The input is read as a ``dask.dataframe`` (``from_map``): a CSV or JSON Lines file in blocks of
about ``--chunk-rows`` whole lines (the client reads the file once to find where each block starts
and its first line number, so a rejected row keeps its line), a Parquet file a row group at a time.
Each partition is scored through ``map_partitions`` on a worker (:mod:`.dask_parts`), with one
onnxruntime session per worker process: the version is loaded, verified as every load is, and
checked to be the one the client verified, at that process's first partition.

``--out`` is then a folder of part files, one per partition in order (``part-00000.csv``, ... each
with its header; Parquet parts share one schema, so the folder reads as one dataset), written by
the workers with the local path's writers: the parts, concatenated, are the local output. They are
written to a temporary folder beside ``--out``, renamed into place once every part is written. The
rejects come back to the client, a partition's at a time, and go to one rejects file in line order.

The input, the version and ``--out`` must be at the same paths on the client and every worker (a
shared filesystem); in a CSV file, a quoted field may not span the lines where blocks are cut.
dask and pandas are imported only here: the runtime's image has neither.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shutil
from pathlib import Path
from typing import Any, BinaryIO

from ml_matching.contract import FeatureSet, InvalidInput, LoadedModel, MissingDependency
from ml_matching.runtime.batch import Job, Progress, Summary, added_columns
from ml_matching.runtime.dask_parts import (
    DASK_HINT,
    LINE,
    MISFIT,
    ModelRef,
    Part,
    Task,
    meta,
    read_part,
    result_meta,
    score_part,
)
from ml_matching.runtime.files import CsvLayout, Format, commit, file_format, replacing, temporary
from ml_matching.runtime.parquet import parquet_schema, pyarrow

SAMPLE_BYTES = 1 << 20  # read to estimate the bytes of a line, hence of a block
#: What a run writes in ``--out`` (dask_parts.write_part): an earlier run's folder may be replaced.
PART = re.compile(r"part-\d{5,}\.(csv|jsonl|parquet)")


def _dask() -> tuple[Any, Any, Any]:
    """``dask``, ``dask.dataframe`` and ``distributed``, or MissingDependency naming the extra."""
    try:
        import dask
        import dask.dataframe
        import distributed
    except ImportError as exc:
        raise MissingDependency(DASK_HINT) from exc
    return dask, dask.dataframe, distributed


def check_dask_job(job: Job) -> None:
    """Refuse a Dask job whose paths clash (``--out`` is a folder here)."""
    if job.chunk_rows < 1:
        raise InvalidInput(f"--chunk-rows must be at least 1, got {job.chunk_rows}")
    if not job.input.is_file():
        raise InvalidInput(f"--in {job.input}: no such file")
    file_format(job.input, "--in")
    if job.out.exists() and not job.out.is_dir():
        raise InvalidInput(
            f"--out {job.out}: with --dask, --out is a folder of part files, and this is a file"
        )
    if len({p.resolve() for p in (job.input, job.out, job.rejects)}) < 3:
        raise InvalidInput("--in, --out and --rejects must be three different paths")
    out = job.out.resolve()
    for option, path in (("--in", job.input), ("--rejects", job.rejects)):
        if path.resolve().is_relative_to(out):
            why = "which a --dask run replaces whole"
            raise InvalidInput(f"{option} {path} is inside --out {job.out}, {why}")
    if job.out.is_dir():
        _only_parts(job.out)


def _only_parts(folder: Path) -> None:
    """Refuse to replace a folder that holds anything but an earlier run's part files: a run puts its
    own folder in place of ``--out`` and removes the old one, with whatever it held."""
    others = sorted(p.name for p in folder.iterdir() if not PART.fullmatch(p.name))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise InvalidInput(
            f"--out {folder}: a --dask run replaces this folder whole, and it holds more than an earlier "
            f"run's part files ({shown}): give a new folder"
        )


def text_parts(path: Path, start: int, first_line: int, chunk_rows: int, quoted: bool = False) -> list[Part]:
    """Blocks of about ``chunk_rows`` whole lines from byte ``start``, each with its first line.

    ``quoted`` (CSV): a block never ends inside a quoted field. Such a field may hold line breaks,
    and a record cut there was scored in two halves on two workers; quotes come in pairs outside a
    field and doubled inside one, so an odd count since ``start`` means the line goes on.
    """
    size = path.stat().st_size
    parts: list[Part] = []
    with open(path, "rb") as fh:
        fh.seek(start)
        sample = fh.read(SAMPLE_BYTES)
        block = max(int(len(sample) / max(sample.count(b"\n"), 1) * chunk_rows), 1)
        at, line = start, first_line
        while at < size:
            fh.seek(min(at + block, size))
            fh.readline()  # on to the end of the line the block ends in
            end = min(fh.tell(), size)
            fh.seek(at)
            lines, quotes = _count(fh, end - at)
            while quoted and quotes % 2 and end < size:  # the record goes on: so does the block
                more = fh.readline()
                end, lines, quotes = end + len(more), lines + more.count(b"\n"), quotes + more.count(b'"')
            if end == size and not _ends_line(fh, end):
                lines += 1  # a last line without its newline
            parts.append(Part(len(parts), line, at, end))
            at, line = end, line + lines
    return parts or [Part(0, first_line, start, start)]  # no rows: one empty part (a header alone)


def _count(fh: BinaryIO, size: int) -> tuple[int, int]:
    """The line breaks and double quotes in the next ``size`` bytes of ``fh``."""
    breaks = quotes = 0
    while size > 0:
        data = fh.read(min(size, 8 << 20))
        breaks, quotes, size = breaks + data.count(b"\n"), quotes + data.count(b'"'), size - len(data)
    return breaks, quotes


def _ends_line(fh: BinaryIO, end: int) -> bool:
    fh.seek(end - 1)
    return fh.read(1) == b"\n"


def parquet_parts(path: Path) -> tuple[list[Part], list[int]]:
    """A partition per row group, with the position of its first row; and each one's rows."""
    _, pq = pyarrow()
    metadata = pq.ParquetFile(path).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    firsts = itertools.accumulate([1, *sizes[:-1]])
    if not sizes:  # one empty partition: the output is the schema's, as the local one
        return [Part(0, 1)], [0]
    return [Part(i, first, row_group=i) for i, first in enumerate(firsts)], sizes


def plan(
    job: Job, fs: FeatureSet, added: list[str], ref: ModelRef, out: Path
) -> tuple[Task, list[Part], list[int]]:
    """The task, its partitions, and each partition's share of the work (bytes, or Parquet rows)."""
    fmt: Format = file_format(job.input, "--in")
    if fmt == "parquet":
        _own_columns(job.input, list(parquet_schema(job.input, fs, added).names))
        parts, sizes = parquet_parts(job.input)
        return Task(str(job.input), fmt, str(out), ref), parts, sizes
    if fmt == "jsonl":
        task, start, first = Task(str(job.input), fmt, str(out), ref), 0, 1
    else:
        layout = CsvLayout.read(job.input, fs, added)
        _own_columns(job.input, list(layout.header))  # the frame's columns, as the header names them
        task = Task(str(job.input), fmt, str(out), ref, tuple(layout.header), tuple(layout.at))
        with open(job.input, "rb") as fh:
            start, first = len(fh.readline()), 2  # the header is line 1
    parts = text_parts(job.input, start, first, job.chunk_rows, quoted=fmt == "csv")
    return task, parts, [p.end - p.start for p in parts]


def _own_columns(path: Path, names: list[str]) -> None:
    """Refuse a column named like one a partition adds to its rows (each row's line; a CSV record
    that does not fit the header): its values would be overwritten."""
    taken = [n for n in (LINE, MISFIT) if n in names]
    if taken:
        raise InvalidInput(
            f"--in {path}: the column `{taken[0]}` has a name --dask uses for a column of its own (its "
            "values would be lost): rename it, or score without --dask"
        )


def score_on_dask(address: str, folder: Path, model: LoadedModel, job: Job, progress: Progress) -> Summary:
    """Score ``job`` on the Dask scheduler at ``address`` with ``model``, loaded from ``folder``
    (each worker loads and verifies it again); see the module's docstring."""
    dask, dd, distributed = _dask()
    # Workers open these paths in their own working folder, which need not be ours: a relative --in
    # scored whatever file of that name sat there.
    job = dataclasses.replace(
        job, input=job.input.absolute(), out=job.out.absolute(), rejects=job.rejects.absolute()
    )
    added = added_columns(model, job.explain)
    ref = ModelRef(str(folder.resolve()), model.sidecar.onnx.sha256, job.explain)
    tmp = temporary(job.out, folder=True)
    try:
        task, parts, sizes = plan(job, model.feature_set, added, ref, tmp)
        schema = parquet_schema(job.input, model.feature_set, added) if task.format == "parquet" else None
        with dask.config.set({"dataframe.convert-string": False}):  # the parts keep the file's text
            frames = dd.from_map(read_part, parts, task=task, meta=meta(task, schema), enforce_metadata=False)
            results = frames.map_partitions(score_part, task, meta=result_meta(), enforce_metadata=False)
            summary, rejects = _run(distributed, address, results.to_delayed(), sizes, progress)
        _finish(tmp, job, rejects)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.seconds = progress.clock() - progress.started
    return summary


def _run(
    distributed: Any, address: str, delayed: list[Any], sizes: list[int], progress: Progress
) -> tuple[Summary, list[bytes]]:
    """Compute every partition, reporting progress as they finish; the rejects in partition order."""
    summary, total, done = Summary(), max(sum(sizes), 1), 0
    rejects: dict[int, bytes] = {}
    with distributed.Client(address, set_as_default=False) as client:
        futures = client.compute(delayed)
        try:
            for future in distributed.as_completed(futures, loop=client.loop):
                for index, scored, rejected, body in future.result().itertuples(index=False):
                    summary.scored += int(scored)
                    summary.rejected += int(rejected)
                    rejects[int(index)] = body
                    done += sizes[int(index)]
                progress.update(summary.scored + summary.rejected, summary.rejected, done / total)
        except BaseException:
            client.cancel(futures)  # the other partitions stop: their folder is about to go
            raise
    return summary, [rejects[i] for i in sorted(rejects)]


def _finish(tmp: Path, job: Job, rejects: list[bytes]) -> None:
    """Write the rejects file, then put the folder of parts in place of ``--out``."""
    with replacing(job.rejects) as (fh, rejects_tmp):
        fh.writelines(rejects)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private
    old = None
    if job.out.exists():  # a previous run's folder: moved aside, then removed
        old = temporary(job.out, folder=True)
        os.replace(job.out, old / job.out.name)
    os.replace(tmp, job.out)
    commit(rejects_tmp, job.rejects)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
