"""Read the tables people give: CSV/TSV/TXT, JSON Lines or JSON, Excel and Parquet -> rows of
text, every row accounted for.

Every file a user gives goes through this reader (the app's Batch and Evaluation tabs, score,
evaluate, calibrate, adapt and training's local files), so a file reads the same way everywhere.
What the file is (or that it is no table: an archive, a web page, a Git LFS pointer...), its
encoding, layout and header are decided from its head; one pass then reads the whole file, checks
its quoting and counts its rows, so that it can be streamed in chunks with a fixed set of columns.
Every cell is a `str` (missing cells are ""), rows and columns keep their input order, and each
input row is one output row unless a note (`notes`, shown by the app and the command line) says
which lines were skipped, merged or split and why. Anything that cannot be read raises ValueError
saying what was expected, what was found and how to fix it.

Parts: `sniff` (what the file is), `text`, `workbook` and `parquet` (its rows), `columns` (header
and text column), `stream` (the counting pass, the notes and the public calls).
"""

from emotion_app.data.tables.columns import resolve_column
from emotion_app.data.tables.sniff import HEAD_BYTES
from emotion_app.data.tables.stream import (
    Table,
    TableStream,
    iter_chunks,
    open_table,
    read_table,
)

__all__ = ["HEAD_BYTES", "Table", "TableStream", "iter_chunks", "open_table", "read_table", "resolve_column"]
