"""Reading submission CSVs as LMS exports write them, and writing graded CSVs safely.

Encodings (UTF-8, UTF-8 with BOM, UTF-16, cp1252) are detected with
charset-normalizer, the delimiter (``,``, ``;`` or tab) is sniffed from the
first rows, quoted newlines are kept, and rows are read in chunks so memory
stays bounded on any file size. Undecodable bytes are kept as surrogate escapes
so the row that holds them can be flagged instead of the whole file failing.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from grader.errors import InputDataError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

DELIMITERS = (",", ";", "\t")
SAMPLE_BYTES = 256 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PREFERRED = ("utf_8", "utf_16", "utf_16_le", "utf_16_be", "cp1252")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is encoded and delimited."""

    encoding: str  # a Python codec name; "utf-8-sig" and "utf-16" consume the BOM
    delimiter: str
    bom: bool = False

    @property
    def output_encoding(self) -> str:
        """UTF-8, with a BOM when the input came from a tool (Excel) that needs one to read UTF-8."""
        return "utf-8-sig" if self.bom or self.encoding not in ("utf-8", "ascii") else "utf-8"

    def describe(self) -> str:
        """A short human description, e.g. ``utf-16, tab-delimited``."""
        names = {",": "comma", ";": "semicolon", "\t": "tab"}
        return f"{self.encoding}, {names.get(self.delimiter, repr(self.delimiter))}-delimited"


def detect_encoding(sample: bytes, source: str = "<csv>") -> tuple[str, bool]:
    """(codec, has_bom) of a file's first bytes, detected with charset-normalizer.

    Raises :class:`InputDataError` when the bytes do not look like text at all.
    """
    from charset_normalizer import from_bytes

    # LMS exports come in these; asking for them first keeps the library from exotic guesses (a column of
    # accented letters in UTF-8 also decodes as Korean cp949). Anything else still gets a full detection.
    best = from_bytes(sample, cp_isolation=list(PREFERRED)).best() or from_bytes(sample).best()
    if best is None:
        raise InputDataError("the file is not text (binary data or an unknown encoding); export the responses "
                             "as CSV (UTF-8, UTF-16 or Windows-1252)", source=source)
    encoding = codecs.lookup(best.encoding).name
    if encoding.startswith("utf-16") or encoding.startswith("utf_16"):
        return ("utf-16" if best.bom else encoding.replace("_", "-")), bool(best.bom)
    if encoding in ("utf-8", "utf_8", "ascii"):
        return ("utf-8-sig" if best.bom else "utf-8"), bool(best.bom)
    # Single-byte guesses on short samples are often ambiguous between Western code pages;
    # Excel on Windows writes cp1252, so prefer it whenever it reads the bytes.
    try:
        sample.decode("cp1252")
        return "cp1252", False
    except UnicodeDecodeError:
        return encoding, False


def sniff_delimiter(text: str, source: str = "<csv>") -> str:
    """The delimiter among ``,`` ``;`` tab that splits the first rows most consistently."""
    best, best_score = ",", (-1, -1)
    for delim in DELIMITERS:
        try:
            rows = list(_head_rows(text, delim, 50))
        except csv.Error:
            continue
        if not rows:
            continue
        widths = [len(r) for r in rows]
        header = widths[0]
        if header < 2:
            score = (0, 0)
        else:
            consistent = sum(w == header for w in widths)
            score = (consistent, header)
        if score > best_score:
            best, best_score = delim, score
    return best


def _head_rows(text: str, delimiter: str, limit: int) -> Iterator[list[str]]:
    # Drop the last (maybe cut) line so a sample boundary does not count as a ragged row.
    cut = text.rfind("\n")
    text = text[:cut] if cut > 0 else text
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for i, row in enumerate(reader):
        if i >= limit:
            break
        yield row


def detect_format(path: str | Path, encoding: str | None = None, delimiter: str | None = None) -> CsvFormat:
    """Encoding and delimiter of ``path``; given values are used as they are."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            sample = fh.read(SAMPLE_BYTES)
            more = bool(fh.read(1))
    except FileNotFoundError:
        raise InputDataError("file not found", source=str(path)) from None
    except OSError as exc:
        raise InputDataError(f"cannot read the file: {exc.strerror or exc}", source=str(path)) from None
    if not sample.strip():
        raise InputDataError("the file is empty; expected a header row and answer rows", source=str(path))
    bom = False
    if more:  # cut the sample at a line end so no character is split (UTF-16 lines end in 2 bytes)
        cut = sample.rfind(b"\n") + 1
        if cut > 0:
            sample = sample[: cut + (cut % 2 if sample.count(b"\x00") > len(sample) // 4 else 0)]
    if encoding is None:
        encoding, bom = detect_encoding(sample, str(path))
    else:
        try:
            encoding = codecs.lookup(encoding).name
        except LookupError:
            raise InputDataError(f"unknown encoding {encoding!r}; use e.g. utf-8, utf-16 or cp1252",
                                 field="encoding", source=str(path)) from None
        bom = sample.startswith((codecs.BOM_UTF8, *_UTF16_BOMS))
    text = sample.decode(encoding, errors="replace")
    if "\x00" in text.replace("\x00\x00", "") and not encoding.startswith("utf-16"):
        raise InputDataError("the file holds NUL bytes, so it is binary or mis-encoded; export it as CSV text",
                             source=str(path))
    if delimiter is None:
        delimiter = sniff_delimiter(text.lstrip("\ufeff"), str(path))
    elif delimiter in ("tab", "\\t"):
        delimiter = "\t"
    if len(delimiter) != 1:
        raise InputDataError(f"the delimiter must be one character (',', ';' or 'tab'). Got {delimiter!r}.",
                             field="delimiter", source=str(path))
    return CsvFormat(encoding, delimiter, bom)


class CsvReader:
    """Rows of a CSV file as lists of strings, with the physical line each row starts on.

    Undecodable bytes come back as surrogate escapes; :func:`undecodable` finds them.
    """

    def __init__(self, path: str | Path, fmt: CsvFormat):
        self.path = Path(path)
        self.format = fmt
        self._fh = open(self.path, encoding=fmt.encoding, errors="surrogateescape", newline="")
        self._reader = csv.reader(self._fh, delimiter=fmt.delimiter, strict=False)
        self.line = 0  # physical line where the last row returned started

    def __iter__(self):
        return self

    def __next__(self) -> list[str]:
        start = self._reader.line_num + 1
        try:
            row = next(self._reader)
        except csv.Error as exc:
            raise InputDataError(f"line {start}: {exc}", source=str(self.path)) from None
        except UnicodeError as exc:
            raise InputDataError(f"line {start}: cannot decode as {self.format.encoding}: {exc}",
                                 source=str(self.path)) from None
        self.line = start
        if row and start == 1 and row[0].startswith("\ufeff"):
            row[0] = row[0][1:]
        return row

    def chunks(self, size: int) -> Iterator[list[tuple[int, list[str]]]]:
        """Remaining rows in lists of at most ``size`` (line, row) pairs; blank lines are skipped."""
        chunk: list[tuple[int, list[str]]] = []
        for row in self:
            if not row:
                continue
            chunk.append((self.line, row))
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def close(self) -> None:
        """Close the underlying file."""
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Scan:
    """What one cheap pass over a file found: the header, the row count and the widest row."""

    header: list[str]
    rows: int
    max_width: int
    unclosed_quote_line: int | None = None


def scan(path: str | Path, fmt: CsvFormat) -> Scan:
    """Read the whole file once, without grading, to count rows and find structural damage."""
    with CsvReader(path, fmt) as reader:
        try:
            header = next(reader)
            while not header:
                header = next(reader)
        except StopIteration:
            raise InputDataError("the file is empty; expected a header row and answer rows",
                                 source=str(path)) from None
        rows, width, last_line, last_row = 0, len(header), 1, None
        for row in reader:
            if not row:
                continue
            rows += 1
            width = max(width, len(row))
            last_line, last_row = reader.line, row
        end_line = reader._reader.line_num
    unclosed = None
    if last_row is not None and end_line > last_line and _ends_in_open_quote(path, fmt, last_line):
        unclosed = last_line
    return Scan(header, rows, width, unclosed)


def _ends_in_open_quote(path: Path, fmt: CsvFormat, line: int) -> bool:
    """Whether the row starting at ``line`` runs to the end of the file inside a quoted field."""
    with open(path, encoding=fmt.encoding, errors="surrogateescape", newline="") as fh:
        for _ in range(line - 1):
            fh.readline()
        tail = fh.read()
    try:
        list(csv.reader(io.StringIO(tail, newline=""), delimiter=fmt.delimiter, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def undecodable(cell: str) -> bool:
    """Whether a cell read by :class:`CsvReader` held bytes the file's encoding cannot decode."""
    return not cell.isascii() and bool(_SURROGATE.search(cell))


def clean(cell: str) -> str:
    """The cell with undecodable bytes replaced by U+FFFD so it can be written as UTF-8."""
    return cell if cell.isascii() else _SURROGATE.sub("\ufffd", cell)


def neutralize(cell: str) -> str:
    """A cell a spreadsheet will show as text, never run as a formula (OWASP CSV injection)."""
    if cell and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def format_rows(rows: list[list[str]], delimiter: str) -> str:
    """Rows as CSV text (RFC 4180, CRLF line ends), every cell cleaned and neutralised."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    for row in rows:
        writer.writerow([neutralize(clean(c)) for c in row])
    return buf.getvalue()
