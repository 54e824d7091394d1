"""grade_csv and `grader grade`: layouts, the catalogue of ugly files, nothing lost, safe output."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from grader.files.batch import FIELDS, grade_csv
from grader.cli import main
from grader.errors import InputDataError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "csv"
EXAMPLE = ROOT / "examples" / "moodle_responses.csv"
RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"
GOOD = ("The RNN multiplies by the same weight matrix at every step, so gradients vanish; the LSTM cell state is "
        "updated additively through gates, so a forget gate near 1 keeps the gradient.")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def rows_of(path: Path, delimiter: str = ",") -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def write(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows(rows)
    return path


def grade(tmp_path, src, grader, rubric, **kw):
    return grade_csv(src, rubric, tmp_path / "out.csv", grader=grader, log=lambda m: None, **kw)


def test_long_layout_keeps_every_row_and_cell_and_adds_the_grade(tmp_path, grader, rubric):
    src = write(tmp_path / "in.csv", [["student_id", "question_id", "answer", "note"],
                                      ["s1", "q5", GOOD, "x"], ["s2", "q1", "b)", ""], ["s3", "q2", "A", "y"],
                                      ["s4", "q3", "T", ""], ["s5", "q4", "true", ""], ["s6", "q5", "", ""]])
    result = grade(tmp_path, src, grader, rubric)
    out = rows_of(result.output)
    assert [r["student_id"] for r in out] == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert list(out[0])[:4] == ["student_id", "question_id", "answer", "note"]
    assert list(out[0])[4:] == [*FIELDS, "error"]
    assert out[0]["answer"] == GOOD and out[2]["note"] == "y"
    assert float(out[0]["points"]) >= 3 and out[0]["max_points"] == "5" and out[0]["concepts_found"]
    assert [r["points"] for r in out[1:5]] == ["1", "0", "1", "0"]
    assert out[5]["points"] == "0" and "empty" in out[5]["flags"] and out[5]["error"] == ""
    assert result.error_rows == 0 and result.rows == 6 and result.answers == 6


def test_wide_example_class_gives_wide_output_with_totals(tmp_path, grader, rubric):
    result = grade(tmp_path, EXAMPLE, grader, rubric)
    with open(EXAMPLE, encoding="utf-8", newline="") as fh:
        original = list(csv.reader(fh))
    with open(result.output, encoding="utf-8", newline="") as fh:
        graded = list(csv.reader(fh))
    assert len(graded) == len(original) >= 41
    width = len(original[0])
    added = graded[0][width:]
    assert added[:len(FIELDS)] == [f"q1_{f}" for f in FIELDS]
    assert added[-3:] == ["total", "max_total", "error"] and len(added) == 5 * len(FIELDS) + 3
    for before, after in zip(original[1:], graded[1:]):
        assert after[:width] == [("'" + c if c.startswith(FORMULA) else c) for c in before]
    out = rows_of(result.output)
    assert all(r["max_total"] == "9" for r in out)
    for r in out:
        assert float(r["total"]) == pytest.approx(sum(float(r[f"q{i}_points"]) for i in range(1, 6)))
    assert {r["q3_points"] for r in out} == {"0", "1"}
    blank = [r for r in out if r["Response 5"] == "'-"]
    assert blank and all(r["q5_points"] == "0" and "empty" in r["q5_flags"] for r in blank)
    assert result.summary.questions["q5"].graded == len(out)
    # Identical answers (the copied one) are graded once.
    assert result.graded_now < result.answers


def test_long_question_cells_may_name_questions_by_number_or_case(tmp_path, grader, rubric):
    src = write(tmp_path / "in.csv", [["student", "question", "response"], ["a", "Q3", "True"], ["b", "3", "t"],
                                      ["c", "Question 4", "False"], ["d", "Q9", "x"]])
    rows = rows_of(grade(tmp_path, src, grader, rubric).output)
    assert [r["points"] for r in rows] == ["1", "1", "1", ""]
    assert "unknown question 'Q9'" in rows[3]["error"]


def test_cp1252_wide_export_maps_localised_headers(tmp_path, grader, rubric):
    result = grade(tmp_path, FIXTURES / "cp1252_semicolon.csv", grader, rubric)
    assert result.columns.questions == {"q3": 3, "q4": 4, "q5": 5}
    rows = rows_of(result.output, ";")
    assert rows[0]["Nachname"] == "Müller" and rows[0]["q3_points"] == "1" and rows[0]["q4_points"] == "1"
    assert result.output.read_bytes().startswith(b"\xef\xbb\xbf")


def test_identical_answers_up_to_case_and_spacing_are_graded_once(tmp_path, grader, rubric):
    variants = [GOOD, GOOD.upper(), "  " + GOOD.replace(" ", "   ") + " "]
    rows = [["id", "question_id", "answer"]] + [[str(i), "q5", variants[i % 3]] for i in range(30)]
    result = grade(tmp_path, write(tmp_path / "in.csv", rows), grader, rubric, chunk_size=7)
    assert result.graded_now == 1 and result.answers == 30
    assert len({r["points"] for r in rows_of(result.output)}) == 1


# The catalogue: each file either fails with a message naming the file and what is wrong,
# or comes back with every row, the bad ones carrying an error.
CATALOGUE = [
    ("missing_answer_column.csv", "`answer_col`", None),
    ("duplicate_headers.csv", "2 columns named 'answer'", None),
    ("duplicate_question_columns.csv", "q5 matches several columns", None),
    ("binary_junk.csv", "not text", None),
    ("unclosed_quote.csv", "line 3: a quoted field opens here and is never closed", None),
    ("empty.csv", "empty", None),
    ("no_question_columns.csv", "no column matches a rubric question", None),
    ("header_only.csv", None, (0, 0)),
    ("ragged_rows.csv", None, (4, 2)),
    ("unknown_question.csv", None, (3, 2)),
    ("formula_cells.csv", None, (5, 0)),
    ("cp1252_semicolon.csv", None, (2, 0)),
    ("utf16_tab.txt", None, (3, 0)),
    ("utf8_bom.csv", None, (2, 0)),
    ("quoted_newlines.csv", None, (2, 0)),
    ("semicolon.csv", None, (2, 0)),
    ("tab.tsv", None, (2, 0)),
    ("undecodable_cell.csv", None, (3, 0)),
]


@pytest.mark.parametrize("name,message,counts", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_catalogue_of_ugly_files(tmp_path, grader, rubric, name, message, counts):
    src = tmp_path / name
    shutil.copy(FIXTURES / name, src)
    if message:
        with pytest.raises(InputDataError) as err:
            grade(tmp_path, src, grader, rubric)
        assert message in str(err.value) and name in str(err.value)
        assert not (tmp_path / "out.csv").exists()
        return
    result = grade(tmp_path, src, grader, rubric)
    rows = rows_of(result.output, result.format.delimiter)
    assert (len(rows), sum(bool(r["error"]) for r in rows)) == counts
    assert result.rows == counts[0] and result.error_rows == counts[1]


def test_ragged_rows_keep_extra_cells_and_say_why(tmp_path, grader, rubric):
    result = grade(tmp_path, FIXTURES / "ragged_rows.csv", grader, rubric)
    rows = rows_of(result.output)
    assert list(rows[0])[3:5] == ["extra", "points"]  # one column, however many extra cells
    assert rows[2]["extra"] == "surplus,more" and rows[0]["extra"] == rows[1]["extra"] == ""
    assert "the row has 2 cells but the header has 3" in rows[1]["error"]
    assert "the row has 5 cells" in rows[2]["error"]


def test_unknown_question_rows_are_kept_with_the_valid_ids(tmp_path, grader, rubric):
    rows = rows_of(grade(tmp_path, FIXTURES / "unknown_question.csv", grader, rubric).output)
    assert rows[1]["answer"] == "something" and rows[1]["points"] == ""
    assert "unknown question 'q99'" in rows[1]["error"] and "q1, q2, q3, q4, q5" in rows[1]["error"]
    assert "no question id" in rows[2]["error"]


def test_a_1mb_answer_is_graded_on_its_start_and_flagged(tmp_path, grader, rubric):
    huge = (GOOD + " ") * (1_000_000 // (len(GOOD) + 1) + 1)
    src = write(tmp_path / "big.csv", [["student_id", "question_id", "answer"], ["s1", "q5", huge],
                                       ["s2", "q3", "True"]])
    result = grade(tmp_path, src, grader, rubric)
    rows = rows_of(result.output)
    assert rows[0]["answer"] == huge  # the cell itself comes back whole
    assert "truncated" in rows[0]["flags"] and float(rows[0]["points"]) > 0
    assert f"over the limit of {grader.max_answer_chars}" in rows[0]["error"]
    assert rows[1]["error"] == "" and result.error_rows == 1


def test_undecodable_cells_are_flagged_not_fatal(tmp_path, grader, rubric):
    result = grade(tmp_path, FIXTURES / "undecodable_cell.csv", grader, rubric, encoding="utf-8")
    rows = rows_of(result.output)
    assert len(rows) == 3 and "\ufffd" in rows[1]["answer"]
    assert "column 'answer' holds bytes that are not valid text" in rows[1]["error"]
    assert rows[1]["points"] != ""


def test_every_formula_like_cell_is_neutralised_in_the_output(tmp_path, grader, rubric):
    result = grade(tmp_path, FIXTURES / "formula_cells.csv", grader, rubric)
    with open(result.output, encoding="utf-8", newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert not [c for c in cells if c.startswith(FORMULA)]
    for original in ("=cmd|'/c calc'!A1", "+s2", "-s3", "@SUM(A1:A2)", "=HYPERLINK(\"http://x\")",
                     "\tleading tab", "\rleading CR"):
        assert "'" + original in cells


def test_utf16_input_gives_utf8_output_with_a_bom_and_the_same_delimiter(tmp_path, grader, rubric):
    result = grade(tmp_path, FIXTURES / "utf16_tab.txt", grader, rubric)
    data = result.output.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = rows_of(result.output, "\t")
    assert rows[1]["answer"] == "Zürich: the cell state is\r\nupdated additively"


class Failing:
    """Failure injection: the engine breaks on the second chunk."""

    def __init__(self, real):
        self.real, self.calls = real, 0
        self.max_answer_chars, self.review_threshold = real.max_answer_chars, real.review_threshold
        self.embedder, self.combiner = real.embedder, real.combiner

    def grade_many(self, items):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.real.grade_many(items)


def test_a_failed_run_leaves_no_output_and_can_resume(tmp_path, grader, rubric):
    rows = [["id", "question_id", "answer"]] + [[str(i), "q5", f"{GOOD} ({i})"] for i in range(6)]
    src = write(tmp_path / "in.csv", rows)
    with pytest.raises(KeyboardInterrupt):
        grade(tmp_path, src, Failing(grader), rubric, chunk_size=2)
    assert not (tmp_path / "out.csv").exists()
    assert (tmp_path / "out.csv.part").exists() and (tmp_path / "out.csv.journal").exists()
    resumed = grade(tmp_path, src, grader, rubric, chunk_size=2, resume=True)
    assert resumed.resumed_rows == 2 and resumed.graded_now == 4
    assert [r["id"] for r in rows_of(resumed.output)] == [str(i) for i in range(6)]
    assert resumed.summary.questions["q5"].graded == 6
    assert not (tmp_path / "out.csv.journal").exists()


def test_resume_refuses_a_journal_from_other_options(tmp_path, grader, rubric):
    rows = [["id", "question_id", "answer"]] + [[str(i), "q3", "True"] for i in range(4)]
    src = write(tmp_path / "in.csv", rows)
    (tmp_path / "out.csv.part").write_bytes(b"x" * 10)
    (tmp_path / "out.csv.journal").write_text('{"fingerprint": "other"}\n{"rows": 2, "bytes": 5}\n')
    with pytest.raises(InputDataError, match="another input file, rubric or options"):
        grade(tmp_path, src, grader, rubric, resume=True)


def test_resume_refuses_a_run_graded_with_another_encoder_precision(tmp_path, grader, rubric):
    """A run resumed with another precision would mix two encoders' grades in one file (same model name)."""
    from grader.engine import Grader, get_embedder

    assert grader.embedder.backend == "int8"  # the default on a CPU
    rows = [["id", "question_id", "answer"]] + [[str(i), "q5", f"{GOOD} {i}"] for i in range(4)]
    src = write(tmp_path / "in.csv", rows)
    with pytest.raises(KeyboardInterrupt):
        grade(tmp_path, src, Failing(grader), rubric, chunk_size=2)
    fp32 = Grader(rubric, embedder=get_embedder(None, "cpu", "fp32").load())
    with pytest.raises(InputDataError, match="another encoder"):
        grade(tmp_path, src, fp32, rubric, chunk_size=2, resume=True)
    assert grade(tmp_path, src, grader, rubric, chunk_size=2, resume=True).resumed_rows == 2


def test_summary_csv_and_html_report_escape_answers(tmp_path, grader, rubric):
    from grader.files.report import write_report

    evil = "<script>alert('x')</script> the LSTM cell state is added to"
    src = write(tmp_path / "in.csv", [["student_id", "question_id", "answer"], ["<b>s1</b>", "q5", evil],
                                      ["s2", "q3", "True"], ["s3", "q5", GOOD]])
    result = grade(tmp_path, src, grader, rubric)
    result.summary.write_csv(tmp_path / "summary.csv")
    summary = {r["question_id"]: r for r in rows_of(tmp_path / "summary.csv")}
    assert summary["q5"]["answers"] == "2" and summary["q3"]["mean_points"] == "1.00"
    assert set(summary["q5"]) >= {"mean_points", "needs_review", "errors", "correct", "incorrect"}
    page = write_report(result, tmp_path / "report", rubric).read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>s1</b>" not in page
    assert "&lt;script&gt;" in page or result.summary.questions["q5"].reviews == 0
    assert (tmp_path / "report" / "question_5.png").read_bytes().startswith(b"\x89PNG")


def test_cli_exit_status_and_summary_count_errors(tmp_path, capsys):
    src = shutil.copy(FIXTURES / "unknown_question.csv", tmp_path / "u.csv")
    out = tmp_path / "graded.csv"
    code = main(["grade", str(src), "--rubric", str(RUBRIC), "-o", str(out), "--summary", str(tmp_path / "s.csv")])
    captured = capsys.readouterr()
    assert code == 1 and out.exists() and (tmp_path / "s.csv").exists()
    assert "3 rows, 2 with errors" in captured.out and "2 row(s) have errors" in captured.err
    assert "question id  <- column 2 'question_id'" in captured.err
    ok = shutil.copy(FIXTURES / "semicolon.csv", tmp_path / "ok.csv")
    assert main(["grade", str(ok), "--rubric", str(RUBRIC), "--quiet"]) == 0
    assert (tmp_path / "ok.graded.csv").exists()
    assert main(["grade", str(tmp_path / "missing.csv"), "--rubric", str(RUBRIC)]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path, grader, rubric, capsys):
    src = write(tmp_path / "in.csv", [["id", "question_id", "answer"], ["1", "q3", "True"]])
    grade(tmp_path, src, grader, rubric)
    assert "row/s" not in capsys.readouterr().err
    grade(tmp_path, src, grader, rubric, progress=True)
    assert "row" in capsys.readouterr().err


def test_grade_columns_never_clash_with_input_columns(tmp_path, grader, rubric):
    src = write(tmp_path / "in.csv", [["student_id", "question_id", "answer", "points"], ["s1", "q3", "True", "7"]])
    row = rows_of(grade(tmp_path, src, grader, rubric).output)[0]
    assert row["points"] == "7" and row["grader_points"] == "1" and "grader_error" in row


def test_the_output_may_not_overwrite_the_input(tmp_path, grader, rubric):
    src = write(tmp_path / "in.csv", [["student_id", "question_id", "answer"], ["s1", "q3", "True"]])
    with pytest.raises(InputDataError, match="overwrite the input"):
        grade_csv(src, rubric, src, grader=grader)
