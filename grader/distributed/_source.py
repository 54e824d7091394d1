"""A Ray Data datasource over the input files that numbers every row and leaves out the rows already graded.

``ray.data.read_csv`` infers types (a student id ``007`` would become ``7``),
fails on rows longer than the header and knows no row numbers, so the files are
read here with grader's own CSV reader, the one ``grader grade`` uses. One read
task reads one file in order.

Ray Data joins the blocks a read yields until they pass ``target_max_block_size``
bytes, and cuts those that pass it by half again. So a block here is cut as soon
as it passes ``block_bytes``, the value the driver sets there: each goes on alone,
one shard's worth of rows, with no task spent cutting it again.

A block holds ``file`` (the file's index), ``row`` (its 1-based number among the
file's data rows, as ``grader grade`` counts them: blank lines do not count),
``cells`` (the row's cells as UTF-8 bytes; undecodable bytes travel as they were)
and ``notes`` (what reading the row repaired).
"""

from __future__ import annotations

import functools
from typing import Iterator

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from grader.distributed._inputs import InputFile
from grader.files.csvio import CsvReader

SCHEMA = pa.schema([("file", pa.int32()), ("row", pa.int64()), ("cells", pa.list_(pa.binary())),
                    ("notes", pa.list_(pa.string()))])


class SubmissionsDatasource(Datasource):
    """The rows of the input files still to grade; ``done`` maps a file's index to its graded (first, last) ranges."""

    def __init__(self, files: list[InputFile], block_bytes: int, done: dict[int, list[tuple[int, int]]]):
        super().__init__()
        self.files, self.block_bytes, self.done = files, block_bytes, done

    def todo(self, f: InputFile) -> int:
        """Rows of ``f`` still to grade."""
        return f.rows - sum(last - first + 1 for first, last in self.done.get(f.index, []))

    def estimate_inmemory_data_size(self) -> int:
        return sum(f.size * self.todo(f) // max(1, f.rows) for f in self.files)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        tasks = []
        for f in self.files:
            todo = self.todo(f)
            if todo <= 0:
                continue
            meta = BlockMetadata(num_rows=todo, size_bytes=f.size * todo // max(1, f.rows), exec_stats=None,
                                 input_files=[str(f.path)])
            read = functools.partial(read_blocks, f, self.block_bytes, self.done.get(f.index, []))
            tasks.append(ReadTask(read, meta, schema=SCHEMA, per_task_row_limit=per_task_row_limit))
        return tasks


def read_blocks(f: InputFile, block_bytes: int, done: list[tuple[int, int]]) -> Iterator[pa.Table]:
    """Blocks of the consecutive rows of ``f`` outside ``done``, each just over ``block_bytes`` (Arrow's count)."""
    ranges = sorted(done)
    k = 0
    numbers: list[int] = []
    cells: list[list[bytes]] = []
    notes: list[list[str]] = []
    size = 16  # the closing offsets of the two list columns and their values
    for number, row, row_notes in (_csv_rows(f) if f.kind == "csv" else _parquet_rows(f)):
        while k < len(ranges) and ranges[k][1] < number:
            k += 1
        if k < len(ranges) and ranges[k][0] <= number:
            continue  # in a complete shard already
        if numbers and number != numbers[-1] + 1:
            yield _block(f.index, numbers, cells, notes)  # a shard holds consecutive rows
            numbers, cells, notes, size = [], [], [], 16
        data = [c.encode("utf-8", "surrogateescape") for c in row]
        numbers.append(number)
        cells.append(data)
        notes.append(row_notes)
        # Arrow's bytes for the row: its cells and their offsets, the two numbers, its notes and their offsets
        size += sum(map(len, data)) + 4 * len(data) + 16 + sum(len(n.encode()) + 4 for n in row_notes) + 4
        if size > block_bytes:
            yield _block(f.index, numbers, cells, notes)
            numbers, cells, notes, size = [], [], [], 16
    if numbers:
        yield _block(f.index, numbers, cells, notes)


def _block(index: int, numbers: list[int], cells: list[list[bytes]], notes: list[list[str]]) -> pa.Table:
    return pa.table([pa.array([index] * len(numbers), pa.int32()), pa.array(numbers, pa.int64()),
                     pa.array(cells, pa.list_(pa.binary())), pa.array(notes, pa.list_(pa.string()))], schema=SCHEMA)


def _csv_rows(f: InputFile) -> Iterator[tuple[int, list[str], list[str]]]:
    """(row number, cells, notes) of each data row, read as ``grader grade`` reads them."""
    with CsvReader(f.path, f.format) as reader:
        for header in reader:  # blank lines before the header are skipped, as scan() does
            if header:
                break
        number = 0
        for row in reader:
            if not row:
                continue
            number += 1
            yield number, row, list(getattr(reader, "notes", None) or ())


def _parquet_rows(f: InputFile) -> Iterator[tuple[int, list[str], list[str]]]:
    """(row number, cells as text, no notes) of each row of a Parquet file; a null reads as an empty cell."""
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(f.path).iter_batches(batch_size=4096):
        columns = [_texts(batch.column(i)) for i in range(batch.num_columns)]
        for j in range(batch.num_rows):
            number += 1
            yield number, [c[j] for c in columns], []


def _texts(column: pa.Array) -> list[str]:
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        try:
            column = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return ["" if v is None else str(v) for v in column.to_pylist()]
    return ["" if v is None else v for v in column.to_pylist()]
