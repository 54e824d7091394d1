"""Misspelt words read as the question's own words, when concepts are matched word by word."""

from __future__ import annotations

import pytest

from grader.scoring.spelling import corrected_family, one_edit, spelling_vocabulary
from grader.text import analyze


@pytest.mark.parametrize("a, b, close", [
    ("gradiant", "gradient", True),   # a letter changed
    ("weigth", "weight", True),       # two neighbours swapped
    ("multipled", "multiplied", True),  # a letter dropped
    ("matrixx", "matrix", True),      # a letter added
    ("gradinet", "gradient", True),
    ("present", "preserve", False),   # two edits
    ("state", "states", True),
    ("abcdef", "badcfe", False),
])
def test_one_edit(a, b, close):
    assert one_edit(a, b) is close
    assert one_edit(b, a) is close


def test_a_misspelt_word_takes_the_family_of_the_question_word_it_misspells():
    vocabulary = spelling_vocabulary([analyze("the same weight matrix is multiplied, so gradients vanish")])
    assert corrected_family("gradiants", vocabulary) == "gradie"
    assert corrected_family("weigth", vocabulary) == "weight"
    assert corrected_family("gradients", vocabulary) is None  # spelt right: its own family already
    assert corrected_family("eight", vocabulary) is None  # an English word of its own, and short
    assert corrected_family("matrices", vocabulary) is None  # a word of its own, not a misspelt "matrix"
    assert corrected_family("vanishingly", vocabulary) is None  # more than one edit from any


def test_a_misspelt_answer_states_the_concept(grader):
    result = grader.grade("q5", "vanishing gradiants in the rnn becuase the same weigth matrix is multiplyed each step")
    concepts = {c.concept: c for c in result.concepts}
    same = concepts["the same weight matrix is multiplied at every step, so gradients vanish or explode"]
    assert same.found and "weigth" in same.evidence


def test_a_clipped_word_takes_the_one_family_of_the_question_it_begins(grader, rubric):
    from grader.scoring.phrases import AnswerSpans

    prepared = grader.prepare(next(q for q in rubric.questions if q.id == "q5"))
    text = "exploding grads flow back"
    spans = AnswerSpans(analyze(text, prepared.language), grader.encode_answers([text])[text], prepared.topic,
                        prepared.names, None, prepared.spelling)
    assert spans._families == ["explod", "gradie", "flow", "back"]  # "back" is a family of its own here


def test_a_short_form_in_capitals_reads_as_the_question_word_it_begins(embedder):
    from grader.engine import Grader
    from grader.rubric import KeyPhrase, ShortAnswerQuestion
    from grader.scoring.phrases import AnswerSpans

    question = ShortAnswerQuestion(
        id="ack", prompt="Why does TCP slow down when packets are lost?",
        reference_answers=["TCP treats loss as congestion. Acknowledgements tell the sender which packets arrived."],
        max_points=1, key_phrases=[KeyPhrase(text="acknowledgements tell the sender which packets arrived", points=1)])
    grader = Grader(None, embedder=embedder)
    prepared = grader.prepare(question)

    def families(text):
        return AnswerSpans(analyze(text, "en"), grader.encode_answers([text])[text], prepared.topic, prepared.names,
                           None, prepared.spelling)._families

    assert families("The receiver sends ACKs back")[3] == families("acknowledgements")[0]
    assert families("The receiver sends acks back")[3] == "ack"  # three small letters are left as they are
    assert families("The receiver sends ACK back")[3] == families("acknowledgements")[0]
