"""Layout detection and mapping of columns to rubric questions, with every override."""

from __future__ import annotations

import pytest

from grader.errors import InputDataError, UnknownQuestionError
from grader.files.mapping import map_columns, match_question

MOODLE = ["Surname", "First name", "Email address", "State", "Started on", "Completed", "Time taken", "Grade/9.00",
          "Response 1", "Response 2", "Response 3", "Response 4", "Response 5"]


@pytest.mark.parametrize("header,qid", [
    ("q5", "q5"), ("Q5", "q5"), ("Q. 5", "q5"), ("Q. 5 /5.00", "q5"), ("Question 5", "q5"), ("question_5", "q5"),
    ("5", "q5"), ("Response 3", "q3"), ("Antwort 3", "q3"), ("Answer 2", "q2"), ("Frage 4", "q4"),
    ("What is the fundamental architectural insight that allows LSTMs to maintain long-range dependencies", "q5"),
    ("12345: What is the fundamental architectural insight that allows LSTMs to maintain long-range", "q5"),
    ("GRUs consistently outperform LSTMs on tasks requiring very long-range memory...", "q4"),
])
def test_headers_name_questions_by_id_number_or_prompt(rubric, header, qid):
    hit = match_question(header, rubric)
    assert hit is not None and hit[0] == qid


@pytest.mark.parametrize("header", ["Surname", "Email address", "Grade/9.00", "Right answer 5", "1.0", "Time taken",
                                    "Q. 9", "Started on", ""])
def test_other_headers_name_no_question(rubric, header):
    assert match_question(header, rubric) is None


def test_moodle_responses_export_is_wide(rubric):
    cmap = map_columns(MOODLE, rubric)
    assert cmap.layout == "wide"
    assert cmap.questions == {f"q{i}": 7 + i for i in range(1, 6)}
    assert MOODLE[cmap.id_col] == "Email address"
    assert "q5           <- column 13 'Response 5'" in cmap.describe()


def test_response_columns_win_over_mark_columns(rubric):
    header = ["Email address", "Q. 5 /5.00", "Response 5"]
    assert map_columns(header, rubric).questions == {"q5": 2}


def test_long_files_are_detected_by_their_role_columns(rubric):
    cmap = map_columns(["Student ID", "Question", "Answer text", "timestamp"], rubric)
    assert (cmap.layout, cmap.id_col, cmap.question_col, cmap.answer_col) == ("long", 0, 1, 2)


def test_overrides_for_long_files(rubric):
    header = ["who", "item code", "what they wrote", "answer"]
    cmap = map_columns(header, rubric, id_col="who", question_col="item code", answer_col="what they wrote")
    assert (cmap.layout, cmap.id_col, cmap.question_col, cmap.answer_col) == ("long", 0, 1, 2)
    cmap = map_columns(header, rubric, question_col="#2", answer_col="#4")
    assert (cmap.question_col, cmap.answer_col) == (1, 3)


def test_map_overrides_wide_guesses_and_unmapped_questions_are_noted(rubric):
    header = ["Email", "Your explanation", "Response 3"]
    cmap = map_columns(header, rubric, maps=["Your explanation=q5"])
    assert cmap.layout == "wide" and cmap.questions == {"q3": 2, "q5": 1}
    text = cmap.describe()
    assert "given by `maps`" in text and "question q1 has no column" in text


def test_map_by_position_resolves_duplicate_headers(rubric):
    header = ["Email", "Response 5", "Response 5"]
    with pytest.raises(InputDataError, match=r"q5 matches several columns .*#2.*#3.*`maps`"):
        map_columns(header, rubric)
    assert map_columns(header, rubric, maps=["#3=q5"]).questions == {"q5": 2}


@pytest.mark.parametrize("kwargs,message", [
    ({"maps": ["nonsense"]}, "HEADER=QUESTION_ID"),
    ({"maps": ["Nope=q5"]}, "no such column"),
    ({"question_col": "question_id", "answer_col": "missing"}, "`answer_col` 'missing': no such column"),
    ({"id_col": "#9"}, "the file has 3 columns"),
    ({"layout": "diagonal"}, "layout must be"),
])
def test_bad_overrides_say_what_was_given(rubric, kwargs, message):
    with pytest.raises(InputDataError, match=message):
        map_columns(["student_id", "question_id", "answer"], rubric, source="sub.csv", **kwargs)


def test_map_to_an_unknown_question_lists_the_valid_ids(rubric):
    with pytest.raises(UnknownQuestionError, match="Valid ids: q1, q2, q3, q4, q5"):
        map_columns(["a", "b"], rubric, maps=["a=q9"])


def test_missing_answer_column_names_the_file_and_the_option(rubric):
    with pytest.raises(InputDataError) as err:
        map_columns(["student_id", "question_id", "score"], rubric, source="sub.csv")
    assert "sub.csv" in str(err.value) and "`answer_col`" in str(err.value) and "'score'" in str(err.value)


def test_duplicate_role_columns_are_ambiguous(rubric):
    with pytest.raises(InputDataError, match=r"2 columns named 'answer' \(#3, #4\)"):
        map_columns(["student_id", "question_id", "answer", "answer"], rubric)


def test_a_file_with_no_question_columns_explains_the_options(rubric):
    with pytest.raises(InputDataError, match="`maps`"):
        map_columns(["Name", "Email", "Comment"], rubric)
