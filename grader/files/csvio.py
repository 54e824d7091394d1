"""Reading submission CSVs as LMS exports write them, and writing graded CSVs safely.

Encodings (UTF-8, UTF-8 with BOM, UTF-16, cp1252) are detected with
charset-normalizer, the delimiter (``,``, ``;`` or tab) is sniffed from the
first rows, quoted newlines are kept, and rows are read in chunks so memory
stays bounded on any file size. Undecodable bytes are kept as surrogate escapes
so the row that holds them can be flagged instead of the whole file failing.

Nothing is lost or merged without a word: only regular files are read; each
line is decoded on its own, so a file mixing UTF-8 and Windows-1252 rows reads
both right and the reader notes the rows in the minority encoding; control
characters (NUL and the like; tab, CR and LF stay) are removed and noted; and a
quoted cell that swallows lines looking like rows of their own is an error that
names the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from grader.errors import InputDataError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

DELIMITERS = (",", ";", "\t")
SAMPLE_BYTES = 256 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")
# C0 and C1 controls and DEL, except tab, LF and CR: never text a student typed.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BARE_CR = re.compile(rb"(?<=\r)(?!\n)")  # a line ends after a CR that is not the start of CRLF
_BREAK = re.compile("\r\n|\r|\n")
NEVER_CLOSED = ("a quoted field opens here and is never closed, so every later line would become part of one "
                "cell; close the quote and run again")
_ID_SHAPE = re.compile(r"[9@._]")  # a first cell like an id, an email or a user name, not a plain name
_NUL_SHARE = 10  # a sample with more than 1 NUL in this many characters is binary, not text with stray NULs
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PREFERRED = ("utf_8", "utf_16", "utf_16_le", "utf_16_be", "cp1252")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is encoded and delimited."""

    encoding: str  # a Python codec name; "utf-8-sig" and "utf-16" consume the BOM
    delimiter: str
    bom: bool = False
    # The codec of the rows in the minority encoding of a mixed file: "utf-8" beside a legacy code page (a row
    # that is valid UTF-8 is read as UTF-8), or the code page beside a UTF-8 majority (a row that is not valid
    # UTF-8 is read in it). None: every row is read in ``encoding``, as when the encoding was given.
    fallback: str | None = None

    @property
    def output_encoding(self) -> str:
        """UTF-8, with a BOM when the input came from a tool (Excel) that needs one to read UTF-8."""
        return "utf-8-sig" if self.bom or self.encoding not in ("utf-8", "ascii") else "utf-8"

    def describe(self) -> str:
        """A short human description, e.g. ``utf-16, tab-delimited``."""
        names = {",": "comma", ";": "semicolon", "\t": "tab"}
        mixed = f" (rows in {_display(self.fallback)} read as such)" if self.fallback else ""
        return f"{self.encoding}{mixed}, {names.get(self.delimiter, repr(self.delimiter))}-delimited"


def _display(codec: str) -> str:
    return "UTF-8" if codec in ("utf-8", "utf_8") else codec


def _line_codec(encoding: str) -> str:
    return "utf-8" if encoding == "utf-8-sig" else encoding  # the reader drops the BOM from the first cell


def _ascii_compatible(encoding: str) -> bool:
    """Whether line ends, quotes and delimiters are the ASCII bytes in ``encoding`` (not UTF-16 or UTF-32)."""
    try:
        return "\r\n\",;\t".encode(encoding) == b"\r\n\",;\t"
    except (LookupError, UnicodeError):
        return False


def detect_encoding(sample: bytes, source: str = "<csv>") -> tuple[str, bool]:
    """(codec, has_bom) of a file's first bytes, detected with charset-normalizer.

    Raises :class:`InputDataError` when the bytes do not look like text at all.
    """
    from charset_normalizer import from_bytes

    # LMS exports come in these; asking for them first keeps the library from exotic guesses (a column of
    # accented letters in UTF-8 also decodes as Korean cp949). Anything else still gets a full detection.
    # Without a BOM, UTF-16 is believed only when it reads line ends: a short sample may decode as UTF-16
    # however it was written ("c0,c1\r\nr0,\x00" would become one row of CJK).
    def best_of(wide: bool):
        preferred = [c for c in PREFERRED if wide or not c.startswith("utf_16")]
        return from_bytes(sample, cp_isolation=preferred).best() or from_bytes(sample).best()

    def utf16(match) -> bool:
        name = codecs.lookup(match.encoding).name
        return name.startswith(("utf-16", "utf_16")) and (
            bool(match.bom) or any(c in sample.decode(name, errors="replace") for c in "\r\n"))

    best = best_of(b"\x00" in sample or sample.startswith(_UTF16_BOMS))
    if best is not None and codecs.lookup(best.encoding).name.startswith(("utf-16", "utf_16")) and not utf16(best):
        best = best_of(False)
    if best is None:
        raise InputDataError("the file is not text (binary data or an unknown encoding); export the responses "
                             "as CSV (UTF-8, UTF-16 or Windows-1252)", source=source)
    encoding = codecs.lookup(best.encoding).name
    if utf16(best):
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


def open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened for binary reading; refused unless it is a regular file once symlinks are followed.

    A device (``/dev/zero``), a pipe or a directory would be read without end, block, or fail obscurely.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it changes nothing for a regular file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise InputDataError("file not found", source=str(path)) from None
    except OSError as exc:
        if path.is_dir():
            raise InputDataError("not a regular file but a directory; give the path of a CSV file",
                                 source=str(path)) from None
        raise InputDataError(f"cannot read the file: {exc.strerror or exc}", source=str(path)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a file")
        target = os.path.realpath(path)
        link = f" (a link to {target})" if target != os.path.abspath(path) else ""
        raise InputDataError(f"not a regular file but {kind}{link}; give the path of a CSV file",
                             source=str(path))
    return os.fdopen(fd, "rb")


def _mixed_with_utf8(sample: bytes, encoding: str) -> tuple[str, str | None]:
    """(majority codec, minority codec) of a sample that charset-normalizer read as the legacy ``encoding``.

    A legacy code page decodes nearly any bytes, UTF-8 in particular (``café`` becomes ``cafÃ©``); but a
    line of real code-page text is almost never valid UTF-8. So the lines that are valid UTF-8 were
    written in UTF-8, and whichever kind holds more of the sample's non-ASCII lines is the majority.
    """
    if not _ascii_compatible(encoding):
        return encoding, None
    utf8 = legacy = 0
    for line in sample.splitlines():
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            utf8 += 1
        except UnicodeDecodeError:
            legacy += 1
    return ("utf-8", encoding) if utf8 > legacy else (encoding, "utf-8")


def detect_format(path: str | Path, encoding: str | None = None, delimiter: str | None = None) -> CsvFormat:
    """Encoding and delimiter of ``path``; given values are used as they are.

    Only the first ``SAMPLE_BYTES`` are read. A detected legacy encoding (cp1252 and the like) comes with
    a per-row fallback to UTF-8, or, when most non-ASCII lines are UTF-8, the other way round (see
    :class:`CsvFormat`); a given encoding is used for every row.
    """
    path = Path(path)
    with open_regular(path) as fh:
        try:
            sample = fh.read(SAMPLE_BYTES)
            more = bool(fh.read(1))
        except OSError as exc:
            raise InputDataError(f"cannot read the file: {exc.strerror or exc}", source=str(path)) from None
    if not sample.strip():
        raise InputDataError("the file is empty; expected a header row and answer rows", source=str(path))
    bom = False
    fallback = None
    if more:  # cut the sample at a line end so no character is split (UTF-16 lines end in 2 bytes)
        cut = sample.rfind(b"\n") + 1
        if cut > 0:
            sample = sample[: cut + (cut % 2 if sample.count(b"\x00") > len(sample) // 4 else 0)]
    if encoding is None:
        encoding, bom = detect_encoding(sample, str(path))
        if not encoding.startswith(("utf-8", "utf-16")):
            encoding, fallback = _mixed_with_utf8(sample, encoding)
    else:
        try:
            encoding = codecs.lookup(encoding).name
        except LookupError:
            raise InputDataError(f"unknown encoding {encoding!r}; use e.g. utf-8, utf-16 or cp1252",
                                 field="encoding", source=str(path)) from None
        bom = sample.startswith((codecs.BOM_UTF8, *_UTF16_BOMS))
    text = sample.decode(encoding, errors="replace")
    # A few NULs are stray bytes in a text file, removed and noted row by row; many make it binary.
    if text.count("\x00") * _NUL_SHARE > len(text) and not encoding.startswith("utf-16"):
        raise InputDataError("the file holds NUL bytes, so it is binary or mis-encoded; export it as CSV text",
                             source=str(path))
    if delimiter is None:
        delimiter = sniff_delimiter(_CONTROL.sub("", text).lstrip("\ufeff"), str(path))
    elif delimiter in ("tab", "\\t"):
        delimiter = "\t"
    if len(delimiter) != 1:
        raise InputDataError(f"the delimiter must be one character (',', ';' or 'tab'). Got {delimiter!r}.",
                             field="delimiter", source=str(path))
    return CsvFormat(encoding, delimiter, bom, fallback)


class _Lines:
    """The physical lines of a file as text, each decoded on its own and rid of control characters.

    Iterating yields the lines; after each, ``read_as`` is the codec of a line read in the file's
    minority encoding (else None) and ``removed`` the control characters taken out of it.
    """

    def __init__(self, path: Path, fmt: CsvFormat):
        self.fmt = fmt
        self.codec = _line_codec(fmt.encoding)
        self.read_as: str | None = None
        self.removed = ""
        self._fh = open_regular(path)

    def __iter__(self) -> Iterator[str]:
        lines = self._decoded()
        first = next(lines, None)
        if first is not None:  # a BOM before a quoted first cell would keep the quote from opening
            yield first[1:] if first.startswith("\ufeff") else first
        yield from lines

    def _decoded(self) -> Iterator[str]:
        if not _ascii_compatible(self.codec):  # UTF-16: a line end is two bytes, so split after decoding
            text = io.TextIOWrapper(self._fh, encoding=self.codec, errors="surrogateescape", newline="")
            for line in text:
                self.read_as = None
                yield self._clean(line)
            return
        for raw in self._fh:  # split on LF; a bare CR ends a line too, as in universal newlines
            cr = raw.find(b"\r")
            if cr < 0 or cr == len(raw) - 1 or (cr == len(raw) - 2 and raw.endswith(b"\n")):
                yield self._clean(self._decode(raw))
                continue
            for piece in _BARE_CR.split(raw):
                if piece:
                    yield self._clean(self._decode(piece))

    def _decode(self, raw: bytes) -> str:
        self.read_as = None
        if raw.isascii():
            return raw.decode("ascii")
        fallback = self.fmt.fallback
        if fallback == "utf-8":  # beside a code page, a valid UTF-8 line was written in UTF-8
            try:
                text = raw.decode("utf-8")
                self.read_as = "utf-8"
                return text
            except UnicodeDecodeError:
                return raw.decode(self.codec, errors="surrogateescape")
        try:
            return raw.decode(self.codec)
        except UnicodeDecodeError:
            if fallback:
                try:
                    text = raw.decode(fallback)
                    self.read_as = fallback
                    return text
                except UnicodeDecodeError:
                    pass
            return raw.decode(self.codec, errors="surrogateescape")

    def _clean(self, line: str) -> str:
        if _CONTROL.search(line):
            self.removed = "".join(_CONTROL.findall(line))
            return _CONTROL.sub("", line)
        self.removed = ""
        return line

    def close(self) -> None:
        self._fh.close()


def _notes(read_as: set[str], removed: str, encoding: str) -> list[str]:
    """What reading a row repaired, as the error column says it."""
    notes = [f"the row is not in the file's {_display(encoding)} but in {_display(codec)}; it was read as "
             f"{_display(codec)}" for codec in sorted(read_as)]
    if removed:
        shown = ", ".join(f"U+{ord(c):04X}" for c in sorted(set(removed))[:5])
        notes.append(f"{len(removed)} control character{'s' if len(removed) > 1 else ''} ({shown}) "
                     "removed: they are not text")
    return notes


def _shape(cell: str) -> str | None:
    """What a first cell looks like: ``s12`` and ``s3`` are both ``a9``, ``a@x.edu`` is ``a@a.a``."""
    cell = cell.strip()
    if not cell or len(cell) > 64:
        return None
    return re.sub(r"[^\W\d_]+", "a", re.sub(r"\d+", "9", cell))


class CsvReader:
    """Rows of a CSV file as lists of strings, with the physical line each row starts on.

    Undecodable bytes come back as surrogate escapes; :func:`undecodable` finds them. After each row,
    ``notes`` says what reading it repaired (a row in the file's other encoding, control characters
    removed). A quoted cell that runs over lines which look like rows of the file raises
    :class:`InputDataError` naming the line, unless ``check_rows`` is False (for files grader wrote).
    """

    def __init__(self, path: str | Path, fmt: CsvFormat, *, check_rows: bool = True):
        self.path = Path(path)
        self.format = fmt
        self.check_rows = check_rows
        self._lines = _Lines(self.path, fmt)
        self._raw: list[str] = []
        self._read_as: set[str] = set()
        self._removed: list[str] = []
        self._reader = csv.reader(self._feed(), delimiter=fmt.delimiter, strict=False)
        self._width: int | None = None  # cells in the header, the first row
        self.line = 0  # physical line where the last row returned started
        self.notes: list[str] = []

    def _feed(self) -> Iterator[str]:
        lines = self._lines
        for line in lines:
            self._raw.append(line)
            if lines.read_as:
                self._read_as.add(lines.read_as)
            if lines.removed:
                self._removed.append(lines.removed)
            yield line

    def __iter__(self):
        return self

    def __next__(self) -> list[str]:
        start = self._reader.line_num + 1
        self._raw.clear()
        self._read_as.clear()
        self._removed.clear()
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
        self.notes = _notes(self._read_as, "".join(self._removed), self.format.encoding)
        if self._width is None:
            if row:
                self._width = len(row)
        elif self.check_rows and len(self._raw) > 1:
            self._check_swallowed(row, start)
        return row

    def _check_swallowed(self, row: list[str], start: int) -> None:
        """Raise when a cell of ``row`` holds lines that look like rows of the file (a stray or missing quote).

        A line looks like a row when its first cell has the shape of the row's own first cell (``s12``
        like ``s3``) and it splits into at least 2 cells and half as many as the header (for the cell's
        last line, counting the row's cells after the closing quote). One such line
        is enough when the first cells are ids (digits, ``@``, ``.`` or ``_`` in them), when it has the
        header's width (the last line with the cells after the quote), or when the quote that ends the
        cell is malformed (not followed by a delimiter or a line end) or missing; with first cells that
        are plain words (names) it takes two, so an answer over several lines that hold the delimiter
        is still read as one cell.
        """
        width, delim = self._width or 0, self.format.delimiter
        offset = 0
        for j, cell in enumerate(row):
            parts = _BREAK.split(cell)
            if len(parts) > 1:
                ref = _shape(row[0] if j else next(csv.reader([parts[0]], delimiter=delim), [""])[0])
                hits = []
                for k, part in enumerate(parts[1:], 1):
                    cells = next(csv.reader([part], delimiter=delim), [])
                    # the cell's last line goes on after the closing quote, with the row's later cells
                    count = len(cells) + (len(row) - j - 1 if k == len(parts) - 1 else 0)
                    if ref and cells and count >= max(2, -(-width // 2)) and _shape(cells[0]) == ref:
                        hits.append((start + offset + k, part, count))
                if not hits:
                    offset += len(parts) - 1
                    continue
                problem = self._quote_problem()
                if problem and "unexpected end of data" in problem:
                    raise InputDataError(f"line {start}: {NEVER_CLOSED}", source=str(self.path))
                if len(hits) > 1 or _ID_SHAPE.search(ref) or hits[0][2] == width or problem:
                    line, text, _ = hits[0]
                    shown = text if len(text) <= 60 else text[:57] + "..."
                    raise InputDataError(
                        f"line {start}: a quoted cell opens here and runs on over line {line}, which looks like a "
                        f"row of its own ({shown!r}), so rows would merge into one cell; a quote is missing or "
                        "stray: close it (a quote inside a cell is written twice, \"\"), or remove it, and run "
                        "again", source=str(self.path))
            offset += len(parts) - 1

    def _quote_problem(self) -> str | None:
        """What a strict reader says of the row's lines: a quote not followed by a delimiter, an open quote."""
        try:
            list(csv.reader(self._raw, delimiter=self.format.delimiter, strict=True))
        except csv.Error as exc:
            return str(exc)
        return None

    def chunks(self, size: int) -> Iterator[list[tuple[int, list[str], list[str]]]]:
        """Remaining rows in lists of at most ``size`` (line, row, notes); blank lines are skipped."""
        chunk: list[tuple[int, list[str], list[str]]] = []
        for row in self:
            if not row:
                continue
            chunk.append((self.line, row, self.notes))
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def close(self) -> None:
        """Close the underlying file."""
        self._lines.close()

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
    header_notes: list[str] = field(default_factory=list)


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
        header_notes = reader.notes
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
    return Scan(header, rows, width, unclosed, header_notes)


def _ends_in_open_quote(path: Path, fmt: CsvFormat, line: int) -> bool:
    """Whether the row starting at ``line`` runs to the end of the file inside a quoted field."""
    lines = _Lines(Path(path), fmt)
    try:
        list(csv.reader(itertools.islice(lines, line - 1, None), delimiter=fmt.delimiter, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    finally:
        lines.close()
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
