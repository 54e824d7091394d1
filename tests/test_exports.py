"""Exports of a graded CSV: final points, Moodle and Canvas imports, feedback pages, `grader export`."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from grader.cli import main
from grader.errors import InputDataError
from grader.files.batch import grade_csv
from grader.files.exports import Decision, export, read_graded, unneutralize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "moodle_responses.csv"
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def rows_of(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def graded(tmp_path_factory, grader, rubric) -> Path:
    """The example class graded, in a folder of its own."""
    out = tmp_path_factory.mktemp("exports") / "class.graded.csv"
    grade_csv(EXAMPLE, rubric, out, grader=grader, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def long_graded(tmp_path_factory, grader, rubric) -> Path:
    folder = tmp_path_factory.mktemp("long")
    src = folder / "long.csv"
    with open(src, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["student_id", "question_id", "answer"], ["s1", "Q5", "=cmd| the cell state adds"],
                                  ["s1", "q3", "True"], ["s2", "q5", ""], ["s2", "nine", "x"]])
    grade_csv(src, rubric, folder / "long.graded.csv", grader=grader, log=lambda m: None)
    return folder / "long.graded.csv"


def test_read_graded_finds_every_answer_of_a_wide_file(graded, rubric):
    table = read_graded(graded, rubric)
    assert table.layout == "wide" and table.question_ids == ["q1", "q2", "q3", "q4", "q5"]
    assert len(table.answers) == 5 * len(table.rows) == 5 * 44
    q5 = [a for a in table.answers if a.question_id == "q5"]
    assert q5[0].student == "chinedu.okafor@student.example.edu" and "cell state" in q5[0].answer
    assert any(a.answer.startswith("=SUM(") for a in q5)  # the neutralising quote is undone for reading
    assert [a.answer for a in q5].count("") == 2  # Moodle's "-" for a blank answer reads as empty
    assert all(a.answer == "" for a in read_graded(graded).answers)  # without the rubric: grades only


def test_read_graded_resolves_a_long_files_question_cells(long_graded, rubric):
    table = read_graded(long_graded, rubric)
    assert [(a.question_id, a.row, a.student) for a in table.answers] == [("q5", 1, "s1"), ("q3", 2, "s1"),
                                                                          ("q5", 3, "s2")]
    assert table.answers[0].answer == "=cmd| the cell state adds"  # row 4 ('nine') carries an error instead


@pytest.mark.parametrize("cell, original", [("'=SUM(A1)", "=SUM(A1)"), ("'-", "-"), ("'+1", "+1"), ("'text", "'text"),
                                            ("plain", "plain"), ("", "")])
def test_unneutralize_undoes_only_what_neutralize_did(cell, original):
    assert unneutralize(cell) == original


def test_csv_export_has_final_points_source_comment_and_stays_neutralised(graded, rubric, tmp_path):
    table = read_graded(graded, rubric)
    decisions = {("q5", 1): Decision(points=2.5, source="instructor", comment="=HYPERLINK(\"x\")"),
                 ("q5", 2): Decision(points=4.0, source="accepted"),
                 ("q5", 3): Decision(fields={"points": "1", "label": "incorrect"}, source="grader")}
    out = rows_of(export(table, "csv", tmp_path / "final.csv", decisions))
    header, first, second, third = out[0], out[1], out[2], out[3]
    col = {h: i for i, h in enumerate(header)}
    assert header[:len(table.header)] == table.header
    assert {"q5_source", "q5_comment", "q5_grader_points"} <= set(header)
    assert (first[col["q5_points"]], first[col["q5_source"]]) == ("2.5", "instructor")
    assert first[col["q5_comment"]] == "'=HYPERLINK(\"x\")"  # formula neutralised as `grader grade` does
    assert first[col["q5_grader_points"]] == table.rows[0][table.blocks["q5"]]
    assert float(first[col["total"]]) == pytest.approx(sum(float(first[col[f"q{i}_points"]]) for i in range(1, 6)))
    assert second[col["q5_source"]] == "accepted" and second[col["q5_needs_review"]] == "false"
    assert (third[col["q5_points"]], third[col["q5_source"]]) == ("1", "regrade")
    assert out[4][col["q5_source"]] == "grader" and len(out) == 45
    assert not [c for row in out[1:] for c in row if c.startswith(FORMULA)]


def test_moodle_export_has_email_grade_feedback_per_student(graded, rubric, tmp_path):
    table = read_graded(graded, rubric)
    out = rows_of(export(table, "moodle", tmp_path / "moodle.csv", {("q5", 1): Decision(points=0, comment="see me")}))
    assert out[0] == ["Email address", "Grade", "Feedback"] and len(out) == 45
    first = table.rows[0]
    expected = sum(float(first[table.blocks[q]]) for q in ("q1", "q2", "q3", "q4"))
    assert out[1][0] == "chinedu.okafor@student.example.edu" and float(out[1][1]) == pytest.approx(expected)
    assert "q5: 0/5. see me" in out[1][2] and "\n" not in out[1][2]


def test_canvas_export_has_the_gradebook_columns(graded, rubric, tmp_path):
    out = rows_of(export(read_graded(graded, rubric), "canvas", tmp_path / "canvas.csv", assignment="Quiz 3 (12)"))
    assert out[0] == ["Student", "ID", "SIS User ID", "Section", "Quiz 3 (12)"]
    assert out[1][0].strip() == "Points Possible" and out[1][4] == "9"
    assert out[2][0] == "Okafor, Chinedu" and out[2][2] == "chinedu.okafor@student.example.edu"
    assert len(out) == 46 and all(0 <= float(r[4]) <= 9 for r in out[2:])


def test_feedback_pages_show_answer_points_feedback_never_the_model_answer(long_graded, rubric, tmp_path):
    out = export(read_graded(long_graded, rubric), "feedback", tmp_path / "fb",
                 {("q5", 1): Decision(comment="<b>see me</b>")}, prompts={q.id: q.prompt for q in rubric.questions})
    pages = sorted(out.iterdir())
    assert [p.name for p in pages] == ["001_s1.html", "002_s2.html"]
    text = pages[0].read_text(encoding="utf-8")
    q5 = rubric.question("q5")
    assert q5.prompt in text and "=cmd| the cell state adds" in text and "&lt;b&gt;see me&lt;/b&gt;" in text
    for secret in (q5.reference_answers[0][:60], q5.explanation[:60]):
        assert secret not in text
    assert "(no answer)" in pages[1].read_text(encoding="utf-8")


def test_export_refuses_an_unknown_format_and_overwriting_the_graded_file(graded, rubric):
    table = read_graded(graded, rubric)
    with pytest.raises(InputDataError, match="`format` must be one of"):
        export(table, "xlsx", graded.with_name("x"))
    with pytest.raises(InputDataError, match="overwrite the graded file"):
        export(table, "csv", graded)


def test_read_graded_refuses_a_file_grader_did_not_write(tmp_path):
    with pytest.raises(InputDataError, match="not a file written by `grader grade`"):
        read_graded(shutil.copy(EXAMPLE, tmp_path / "raw.csv"))


def test_cli_export_writes_each_format_beside_the_graded_file(graded, tmp_path, capsys):
    src = shutil.copy(graded, tmp_path / "c.graded.csv")
    for fmt, name in (("moodle", "c.graded.moodle.csv"), ("canvas", "c.graded.canvas.csv"),
                      ("csv", "c.graded.final.csv")):
        assert main(["export", str(src), "--format", fmt]) == 0
        assert (tmp_path / name).exists()
    assert main(["export", str(src), "--format", "feedback", "-o", str(tmp_path / "fb"),
                 "--rubric", str(ROOT / "rubrics" / "rnn_lstm.yaml")]) == 0
    assert len(list((tmp_path / "fb").iterdir())) == 44
    assert main(["export", str(tmp_path / "missing.csv"), "--format", "csv"]) == 2
    assert "file not found" in capsys.readouterr().err
