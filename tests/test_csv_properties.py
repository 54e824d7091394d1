"""Property tests of reading and writing batch files: any file is refused with a message, or every row is
accounted for, in the output or in an error, never lost or merged silently.

The budget is bounded for CI (under 20 s); ``HYPOTHESIS_PROFILE=long`` (tests/conftest.py) runs many
more examples by hand. The grading itself is stubbed: what is under test is the reader and the writer.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.errors import InputDataError
from grader.files.batch import grade_csv
from grader.files.csvio import CsvReader, detect_format, neutralize, scan

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1252", "mixed"]

# Bounded for CI unless the long profile was asked for; then the profile's own settings apply.
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
budget = settings() if LONG else settings(max_examples=40, deadline=None)
budget = settings(budget, suppress_health_check=[HealthCheck.too_slow])

# Quotes, delimiters, line ends, formula starts, NUL and other controls (C0, DEL, C1), accents, BOMs.
CHARS = "ab yz09\"',;\t\r\n=+-@\x00\x07\x1b\x7f\x85éüß€—\ufeff"
CELL = st.text(alphabet=st.sampled_from(list(CHARS)), max_size=8)


class StubGrader:
    """A grader without a model: points from the answer's length, so each row's grade is predictable."""

    max_answer_chars, review_threshold, embedder, combiner = 20_000, 0.5, None, None

    def grade_many(self, items):
        return [SimpleNamespace(points=float(len(a) % 6), max_points=5.0, label="stub", confidence=0.5,
                                needs_review=False, concepts_found=[], concepts_missing=[], feedback="", flags=[])
                for _, a in items]


def encode(rows: list[list[str]], delimiter: str, encoding: str, quoting: int,
           choices: list[bool]) -> tuple[bytes, list]:
    """The file's bytes, and per row the codec it was written in (cp1252 rows fall back to UTF-8 when needed)."""
    data, codecs_used = b"", []
    for k, row in enumerate(rows):
        buf = io.StringIO(newline="")
        csv.writer(buf, delimiter=delimiter, quoting=quoting, lineterminator="\r\n").writerow(row)
        codec = encoding if encoding != "mixed" else ("cp1252" if choices[k % len(choices)] else "utf-8")
        if codec in ("utf-8-sig", "utf-16"):
            codec = "utf-8" if codec == "utf-8-sig" else "utf-16-le"
        try:
            data += buf.getvalue().encode(codec)
        except UnicodeEncodeError:
            codec = "utf-8"
            data += buf.getvalue().encode(codec)
        codecs_used.append(codec)
    if encoding == "utf-8-sig":
        data = b"\xef\xbb\xbf" + data
    elif encoding == "utf-16":
        data = b"\xff\xfe" + data
        codecs_used = ["utf-16-le"] * len(rows)
    return data, codecs_used


@st.composite
def tables(draw):
    """A well-formed file: a header, rows starting with a unique id, ragged widths, any cell text."""
    width = draw(st.integers(2, 5))
    n = draw(st.integers(0, 10))
    rows = [[f"c{k}" for k in range(width)]]
    for i in range(n):
        rows.append([f"r{i}"] + draw(st.lists(CELL, min_size=0, max_size=width + 1)))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    encoding = draw(st.sampled_from(ENCODINGS))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    choices = draw(st.lists(st.booleans(), min_size=1, max_size=4))
    return rows, delimiter, encoding, quoting, choices


def read(path: Path, delimiter: str) -> list[tuple[list[str], list[str]]]:
    """What grade_csv's reading does before any grading: detect, scan, then the rows with their notes."""
    fmt = detect_format(path, delimiter=delimiter)
    scan(path, fmt)
    with CsvReader(path, fmt) as reader:
        out = []
        for row in reader:
            if row:
                out.append((row, reader.notes))
    return out


def _ambiguous(row: list[str], delimiter: str, codec: str) -> bool:
    """Whether a cp1252 row's bytes are valid UTF-8 as well: then no reader can tell which was meant."""
    if codec != "cp1252":
        return False
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerow(row)
    try:
        data = buf.getvalue().encode("cp1252")
        return not data.isascii() and bool(data.decode("utf-8"))
    except UnicodeError:
        return False


@budget
@given(tables())
def test_a_well_formed_file_comes_back_row_for_row_or_is_refused(table):
    rows, delimiter, encoding, quoting, choices = table
    data, codecs_used = encode(rows, delimiter, encoding, quoting, choices)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.csv"
        path.write_bytes(data)
        try:
            got = read(path, delimiter)
        except InputDataError as exc:
            assert str(path) in str(exc)
            return
    header, body = got[0], got[1:]
    assert [row[0] for row, _ in body] == [row[0] for row in rows[1:]], "a row was lost, merged or split"
    assert header[0] == [CONTROL.sub("", c) for c in rows[0]]
    for (row, notes), written, codec in zip(body, rows[1:], codecs_used[1:]):
        expected = [CONTROL.sub("", c) for c in written]
        if row != expected:
            assert notes or _ambiguous(written, delimiter, codec), (row, expected, notes)
        if any(CONTROL.search(c) for c in written):
            assert any("control character" in n for n in notes)


@st.composite
def damaged(draw):
    """A long-layout export written without quote escaping, then a quote put at the start of a cell and
    another one somewhere later: the stray quotes of the issue. Rows keep at least half the header's
    cells, as the reader needs to tell a swallowed row from the lines of an answer."""
    extra = draw(st.integers(0, 2))
    header = ["student_id", "question_id", "answer"] + [f"note{k}" for k in range(extra)]
    width = len(header)
    words = st.text(alphabet=st.sampled_from(list("ab yz09é-")), min_size=1, max_size=6)
    rows = []
    for i in range(draw(st.integers(2, 12))):
        cells = draw(st.lists(words, min_size=max(1, -(-width // 2) - 1), max_size=width))
        rows.append([f"s{i}"] + cells)
    lines = [",".join(header)] + [",".join(r) for r in rows]
    opened = draw(st.integers(1, len(lines) - 1))
    cut = lines[opened].index(",") + 1
    lines[opened] = lines[opened][:cut] + '"' + lines[opened][cut:]
    if draw(st.booleans()):
        later = draw(st.integers(opened, len(lines) - 1))
        pos = draw(st.integers(0, len(lines[later])))
        lines[later] = lines[later][:pos] + '"' + lines[later][pos:]
    return "\r\n".join(lines) + "\r\n", rows


@budget
@given(damaged())
def test_a_stray_quote_never_merges_rows_silently(rubric, case):
    text, rows = case
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        src.write_bytes(text.encode("utf-8"))
        try:
            grade_csv(src, rubric, out, grader=StubGrader(), layout="long", log=lambda m: None)
        except InputDataError as exc:
            assert exc.source == str(src) and re.match(r"line \d+: ", exc.message), exc
            return
        with open(out, encoding="utf-8-sig", newline="") as fh:
            graded = list(csv.reader(fh))[1:]
    # A stray quote may join the cells of one row (`"s0,"0` reads as `s0,0`), never two rows.
    assert len(graded) == len(rows), "a row was lost or merged"
    for (first, *_), (sid, *_) in zip(graded, rows):
        assert re.match(rf"{sid}(\D|$)", first.replace('"', "")), (first, sid)
    swallowed = re.compile(r"[\r\n]s\d+,")
    assert not [c for r in graded for c in r if swallowed.search(c)]


@budget
@given(tables(), st.sampled_from(["points", "error", "extra", "grader_points", "flags"]))
def test_every_row_and_cell_reaches_the_output_under_unique_names(rubric, table, clash):
    rows, delimiter, encoding, quoting, choices = table
    rows = [["student_id", "question_id", "answer", clash]] + [
        [r[0], "q5"] + r[1:] for r in rows[1:]]
    data, codecs_used = encode(rows, delimiter, encoding, quoting, choices)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        src.write_bytes(data)
        try:
            result = grade_csv(src, rubric, out, grader=StubGrader(), layout="long", delimiter=delimiter,
                               log=lambda m: None)
        except InputDataError as exc:
            assert str(src) in str(exc)
            return
        with open(out, encoding="utf-8-sig", newline="") as fh:
            table_out = list(csv.reader(fh, delimiter=delimiter))
        assert not (Path(tmp) / "out.csv.lock").exists()
    names, body = table_out[0], table_out[1:]
    assert len({n.strip().lower() for n in names}) == len(names)
    assert [r[0] for r in body] == [neutralize(r[0]) for r in rows[1:]]
    assert result.rows == len(body)
    error = len(names) - 1
    for got, written, codec in zip(body, rows[1:], codecs_used[1:]):
        expected = [neutralize(CONTROL.sub("", c)) for c in written[:4]] + [""] * (4 - len(written))
        if got[:4] != expected:
            assert got[error] or _ambiguous(written, delimiter, codec), (got, expected)
        assert (len(written) != 4) <= bool(got[error])
        assert all(not CONTROL.search(c) for c in got)


@budget
@given(st.binary(max_size=600), st.sampled_from([b"", b"student_id,question_id,answer\r\n"]))
def test_any_bytes_are_refused_with_a_message_or_every_row_read_is_written(rubric, junk, head):
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        src.write_bytes(head + junk)
        try:
            fmt = detect_format(src)
            with CsvReader(src, fmt) as reader:
                read_rows = [row for row in reader if row]
            result = grade_csv(src, rubric, out, grader=StubGrader(), log=lambda m: None)
        except InputDataError as exc:
            assert str(src) in str(exc) or exc.field
            return
        with open(out, encoding="utf-8-sig", newline="") as fh:
            written = list(csv.reader(fh, delimiter=fmt.delimiter))
    assert len(written) == len(read_rows) == result.rows + 1
    assert all(not CONTROL.search(c) for r in written for c in r)
