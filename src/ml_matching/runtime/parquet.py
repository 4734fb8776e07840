"""Parquet files for batch scoring, read and written a chunk at a time with pyarrow.

pyarrow is the ``parquet`` extra: it is imported when a Parquet file is read or written, and its
absence names the install command. A file is read a batch at a time without read-ahead (pages of
one row group at most are held), so memory follows the file's row-group size, not its length. The
output has the input's schema, then a float64 column per new value. A Parquet row's "line" in the
rejects file is its 1-based position in the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ml_matching.contract import FeatureSet, InvalidInput, MissingDependency
from ml_matching.runtime.files import Chunk, Reject, columns_at
from ml_matching.runtime.rows import Checked, Floats, check_numbers

PARQUET_HINT = "Parquet files need pyarrow (the `parquet` extra): `pip install 'ml-matching[parquet]'`"


def pyarrow() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``, or MissingDependency naming the install command."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingDependency(PARQUET_HINT) from exc
    return pyarrow, pyarrow.parquet


def arrow_numbers(pa: Any, table: Any, where: str, fs: FeatureSet) -> Checked:
    """Check the feature columns of an Arrow table or record batch (numbers; null is refused)."""
    columns, nulls = [], []
    for name in fs.names:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise InvalidInput(f"{where}: column `{name}` holds {column.type}, expected numbers")
        nulls.append(np.asarray(column.is_null(), dtype=np.bool_))
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        columns.append(np.asarray(values, dtype=np.float64))
    return check_numbers(columns, nulls, fs)


def parquet_schema(path: Path, fs: FeatureSet, reserved: Sequence[str]) -> Any:
    """The Arrow schema of a Parquet file, checked like a CSV header."""
    _, pq = pyarrow()
    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInput(f"--in {path}: cannot read as Parquet: {exc}") from None
    columns_at(f"--in {path}", list(schema.names), fs, reserved)
    return schema


def read_parquet(path: Path, fs: FeatureSet, chunk_rows: int, reserved: Sequence[str]) -> Iterator[Chunk]:
    """The chunks of a Parquet file; ``kept`` is an Arrow record batch of the valid rows."""
    pa, pq = pyarrow()
    parquet_schema(path, fs, reserved)
    # Unbuffered whole column chunks and read-ahead on threads held more with every row group.
    source = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    total, first = max(source.metadata.num_rows, 1), 1
    for batch in source.iter_batches(batch_size=chunk_rows, use_threads=False):
        checked = arrow_numbers(pa, batch, f"--in {path}", fs)
        refused = [i for i, _ in checked.refused]
        inputs = batch.take(pa.array(refused, type=pa.int64())).to_pylist()
        rejects = [Reject(first + i, why, row) for (i, why), row in zip(checked.refused, inputs, strict=True)]
        rows = batch.num_rows
        yield Chunk(checked.x, batch.filter(pa.array(checked.ok)), rejects, rows, (first - 1 + rows) / total)
        first += rows


class ParquetWriter:
    """The input's columns, then the new ones (float64)."""

    def __init__(self, fh: BinaryIO, schema: Any, added: Sequence[str]) -> None:
        self._pa, pq = pyarrow()
        for name in added:
            schema = schema.append(self._pa.field(name, self._pa.float64()))
        self._writer = pq.ParquetWriter(fh, schema)

    def write(self, kept: Any, added: dict[str, Floats]) -> None:
        """``kept``: a record batch or table of the input's columns."""
        arrays = [*kept.columns, *(self._pa.array(a) for a in added.values())]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._writer.schema))

    def close(self) -> None:
        self._writer.close()
