"""Rows of a Parquet file: the column names, then every row as text cells, a batch at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from emotion_app.data.tables.cells import cell_text
from emotion_app.data.tables.common import Row

PARQUET_BATCH_ROWS = 4096  # rows decoded at a time: a Parquet file streams like the others


def parquet_rows(path: Path) -> Iterator[Row]:
    """Row 0 holds the column names; data rows are numbered from 1."""
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        parquet = pq.ParquetFile(path)
        names = [str(name) for name in parquet.schema_arrow.names]
        yield Row(0, names)
        number = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for values in zip(*(column.to_pylist() for column in batch.columns)):
                number += 1
                yield Row(number, [_cell(value, path, names[j], number) for j, value in enumerate(values)])
    except (ArrowException, OSError) as err:
        raise ValueError(f"{path.name} could not be read as Parquet ({err}): expected a valid Parquet file. "
                         "Write it again, or save the data as CSV UTF-8.") from None


def _cell(value: object, path: Path, column: str, number: int) -> str:
    try:
        return cell_text(value)
    except ValueError as err:
        raise ValueError(f"{path.name}, column '{column}', row {number:,}: {err}, expected text. Decode that "
                         "column to UTF-8 strings before writing the file, or leave the column out.") from None
