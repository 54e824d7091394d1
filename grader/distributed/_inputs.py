"""The input files of a dataset: one file, a folder or a glob of CSV and Parquet files, and one look at each.

The look (header, rows, widest row, content digest) happens once on the driver,
before Ray starts, so a broken file fails the run at once with the same message
``grader grade`` gives, and the rows of each file are known for the shards.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from grader.encoding.weights import sha256_of
from grader.errors import InputDataError
from grader.files.csvio import CsvFormat, detect_format, scan

KINDS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
NEVER_CLOSED = ("a quoted field opens here and is never closed, so every later line would become part of one cell; "
                "close the quote and run again")


@dataclass(frozen=True)
class InputFile:
    """One input file and what reading it once found."""

    index: int
    path: Path  # absolute: Ray's workers do not run in the driver's folder
    kind: str  # "csv" or "parquet"
    header: tuple[str, ...]
    rows: int
    width: int  # cells of the widest row, the header included
    size: int
    sha256: str
    format: CsvFormat | None = None  # CSV files only
    data_bytes: int = 0  # bytes of the rows' text: the file's size, or a Parquet file's uncompressed size
    name: str = ""  # the path as the user gave it, written in each row's input_file column

    @property
    def row_bytes(self) -> float:
        """Mean bytes of a row's text."""
        return (self.data_bytes or self.size) / max(1, self.rows)


def find_inputs(submissions: str | Path) -> list[Path]:
    """The files ``submissions`` names: itself, the CSV and Parquet files in a folder, or a glob's matches."""
    text = str(submissions)
    path = Path(text)
    if any(ch in text for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        found = [p for p in found if p.suffix.lower() in KINDS]
    elif path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in KINDS
                       and not p.name.startswith((".", "_")))
    elif path.exists():
        return [path]
    else:
        raise InputDataError("file not found", field="submissions", source=text)
    if not found:
        raise InputDataError(f"no CSV or Parquet files ({', '.join(sorted(KINDS))}) there", field="submissions",
                             source=text)
    return found


def describe_inputs(paths: list[Path], encoding: str | None = None, delimiter: str | None = None) -> list[InputFile]:
    """Read each file once: its format, header, rows and digest. All files must share one header."""
    files = [_describe(i, p, encoding, delimiter) for i, p in enumerate(paths)]
    first = files[0]
    for f in files[1:]:
        if f.header != first.header:
            raise InputDataError(f"its header differs from that of {first.path} ({len(f.header)} columns "
                                 f"{list(f.header)[:6]} against {list(first.header)[:6]}); a dataset's files must "
                                 "share one header", source=str(f.path))
    return files


def _describe(index: int, given: Path, encoding: str | None, delimiter: str | None) -> InputFile:
    path = given.absolute()
    kind = KINDS.get(path.suffix.lower(), "csv")
    size = path.stat().st_size
    digest = sha256_of(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise InputDataError(f"cannot read the file as Parquet: {exc}", source=str(path)) from None
        header = tuple(meta.schema_arrow.names)
        data = sum(meta.metadata.row_group(i).total_byte_size for i in range(meta.metadata.num_row_groups))
        return InputFile(index, path, kind, header, meta.metadata.num_rows, len(header), size, digest, None, data,
                         str(given))
    fmt = detect_format(path, encoding, delimiter)
    info = scan(path, fmt)
    if info.unclosed_quote_line:
        raise InputDataError(f"line {info.unclosed_quote_line}: {NEVER_CLOSED}", source=str(path))
    header = tuple(info.header)
    return InputFile(index, path, kind, header, info.rows, max(info.max_width, len(header)), size, digest, fmt, size,
                     str(given))


