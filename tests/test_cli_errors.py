"""Library errors name parameters; the CLI says the same thing in terms of its flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.cli import build_parser, main
from grader.cli.flags import flags_of, in_flags
from grader.errors import InputDataError, UnknownQuestionError
from grader.files.mapping import map_columns
from grader.rubric import load_rubric

RUBRIC = Path(__file__).resolve().parent.parent / "rubrics" / "rnn_lstm.yaml"


def test_the_library_names_the_parameter():
    with pytest.raises(InputDataError) as info:
        map_columns(["student", "q5"], load_rubric(RUBRIC), maps=["nonsense"])
    assert info.value.field == "maps" and "`maps` must be HEADER=QUESTION_ID" in str(info.value)
    assert "--map" not in str(info.value)


def test_the_cli_names_the_flag(tmp_path, capsys):
    csv = tmp_path / "sub.csv"
    csv.write_text("student,q5\n1,an answer\n", encoding="utf-8")
    assert main(["grade", str(csv), "--rubric", str(RUBRIC), "--map", "nonsense", "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "--map must be HEADER=QUESTION_ID" in err and "`maps`" not in err
    assert main(["grade", str(csv), "--rubric", str(RUBRIC), "--answer-col", "nope", "-o", str(tmp_path / "o.csv")]) == 2
    assert "--answer-col 'nope': no such column" in capsys.readouterr().err


def test_every_flag_maps_from_its_parameter():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    grade, evaluate = flags_of(sub["grade"]), flags_of(sub["eval"])
    assert grade["maps"] == "--map" and grade["question_col"] == "--question-col"
    assert evaluate["train_rows"] == "--train" and evaluate["cv"] == "--cv"
    assert in_flags("`folds` must be >= 2; `unknown_name` stays", evaluate) == "--folds must be >= 2; `unknown_name` stays"


def test_an_error_is_not_changed_to_name_another_field():
    original = UnknownQuestionError("question 'q9' is not in the rubric", field="question_id", source="r.yaml")
    renamed = original.with_field("items.3.question_id")
    assert (original.field, renamed.field) == ("question_id", "items.3.question_id")
    assert type(renamed) is UnknownQuestionError and str(renamed) == str(original)
