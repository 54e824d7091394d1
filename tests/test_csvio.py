"""Reading submission CSVs however they were exported: encodings, delimiters, quoted newlines, chunks."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from grader.files.csvio import (CsvFormat, CsvReader, clean, detect_format, format_rows, neutralize, scan, sniff_delimiter,
                          undecodable)
from grader.errors import InputDataError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "csv"

ROWS = [["student_id", "question_id", "answer"],
        ["Müller", "q5", "Der Zellzustand wird additiv aktualisiert — café, naïve, €"],
        ["Dubois", "q5", "Ligne un\r\nligne deux; avec \"guillemets\""],
        ["O'Brien", "q3", "True"]]


def _csv_text(rows, delimiter):
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buf.getvalue()


@pytest.mark.parametrize("encoding,bom,expected", [
    ("utf-8", b"", "utf-8"),
    ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"),
    ("utf-16", b"", "utf-16"),  # Python's utf-16 writes a BOM, as Excel's "Unicode text" does
    ("utf-16-le", b"\xff\xfe", "utf-16"),
    ("cp1252", b"", "cp1252"),
])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_every_encoding_and_delimiter_reads_back_the_same_rows(tmp_path, encoding, bom, expected, delimiter):
    path = tmp_path / "in.csv"
    path.write_bytes(bom + _csv_text(ROWS, delimiter).encode(encoding))
    fmt = detect_format(path)
    assert (fmt.encoding, fmt.delimiter) == (expected, delimiter)
    with CsvReader(path, fmt) as reader:
        assert list(reader) == ROWS


def test_detection_is_stable_when_a_multibyte_character_straddles_the_sample_end(tmp_path):
    line = "s1,q5,\"" + "é" * 50 + "\"\r\n"
    path = tmp_path / "big.csv"
    path.write_bytes(("student_id,question_id,answer\r\n" + line * 6000).encode("utf-8"))
    assert detect_format(path).encoding == "utf-8"


def test_undecodable_bytes_after_the_sample_are_kept_and_detectable(tmp_path):
    path = tmp_path / "late.csv"
    good = "s1,q5,\"café\"\r\n" * 30000
    path.write_bytes(("student_id,question_id,answer\r\n" + good).encode() + b"s2,q5,bad \xff byte\r\n")
    fmt = detect_format(path)
    assert fmt.encoding == "utf-8"
    with CsvReader(path, fmt) as reader:
        rows = list(reader)
    assert len(rows) == 30002
    assert undecodable(rows[-1][2]) and clean(rows[-1][2]) == "bad \ufffd byte"


def test_quoted_newlines_stay_inside_their_cell_and_lines_are_tracked(tmp_path):
    path = tmp_path / "nl.csv"
    path.write_text(_csv_text(ROWS, ","), encoding="utf-8", newline="")
    with CsvReader(path, detect_format(path)) as reader:
        lines = [(reader.line, row) for row in reader]
    assert [line for line, _ in lines] == [1, 2, 3, 5]
    assert lines[2][1][2] == "Ligne un\r\nligne deux; avec \"guillemets\""


def test_chunks_cover_every_row_once_in_order(tmp_path):
    path = tmp_path / "many.csv"
    rows = [["id", "question_id", "answer"]] + [[str(i), "q3", "True"] for i in range(1003)]
    path.write_text(_csv_text(rows, ","), encoding="utf-8", newline="")
    with CsvReader(path, detect_format(path)) as reader:
        next(reader)
        chunks = list(reader.chunks(100))
    assert [len(c) for c in chunks] == [100] * 10 + [3]
    assert [row[0] for c in chunks for _, row, _ in c] == [str(i) for i in range(1003)]
    assert all(notes == [] for c in chunks for _, _, notes in c)


def test_scan_counts_rows_and_finds_the_widest_and_an_unclosed_quote(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a,b\r\n1,2\r\n1,2,3,4\r\n\r\n5,\"never closed\r\nand more words\r\n", encoding="utf-8",
                    newline="")
    info = scan(path, detect_format(path))
    assert info.header == ["a", "b"] and info.rows == 3 and info.max_width == 4
    assert info.unclosed_quote_line == 5


def test_an_unclosed_quote_that_swallows_rows_is_an_error_at_once(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a,b\r\n1,2\r\n5,\"never closed\r\n6,7\r\n", encoding="utf-8", newline="")
    with pytest.raises(InputDataError, match="line 3: a quoted field opens here and is never closed"):
        scan(path, detect_format(path))


def test_sniffing_prefers_the_delimiter_that_splits_consistently():
    assert sniff_delimiter("a;b;c\r\n\"x, y\";2;3\r\n4;5;6\r\n") == ";"
    assert sniff_delimiter("a,b\r\n\"1;2\",3\r\n") == ","
    assert sniff_delimiter("a\tb\tc\r\n1\t2,5\t3\r\n") == "\t"


@pytest.mark.parametrize("name,message", [
    ("empty.csv", "empty"),
    ("binary_junk.csv", "not text"),
])
def test_unreadable_files_name_the_file(name, message):
    with pytest.raises(InputDataError) as err:
        detect_format(FIXTURES / name)
    assert message in str(err.value) and name in str(err.value)


def test_a_missing_file_and_bad_overrides_are_clear(tmp_path):
    with pytest.raises(InputDataError, match="file not found"):
        detect_format(tmp_path / "nope.csv")
    (tmp_path / "x.csv").write_text("a,b\r\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="unknown encoding 'klingon'"):
        detect_format(tmp_path / "x.csv", encoding="klingon")
    with pytest.raises(InputDataError, match="one character"):
        detect_format(tmp_path / "x.csv", delimiter="::")
    assert detect_format(tmp_path / "x.csv", delimiter="tab").delimiter == "\t"


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://e.vil\")"])
def test_formula_like_cells_are_neutralised(cell):
    assert neutralize(cell) == "'" + cell
    out = format_rows([[cell, "plain"]], ",")
    assert next(csv.reader(io.StringIO(out, newline="")))[0].startswith("'")


@pytest.mark.parametrize("cell", ["plain", "", "'quoted", "a=b", "3.5", "q-1"])
def test_ordinary_cells_are_left_alone(cell):
    assert neutralize(cell) == cell


def test_output_encoding_follows_the_input_tool():
    assert CsvFormat("utf-8", ",").output_encoding == "utf-8"
    assert CsvFormat("utf-16", "\t", True).output_encoding == "utf-8-sig"
    assert CsvFormat("cp1252", ";").output_encoding == "utf-8-sig"
