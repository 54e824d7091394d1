"""A model answer that offers alternatives ("Possible adaptations: ...", "One of the following is enough") credits an
answer with the reference sentences it states best, not with all of them."""

from __future__ import annotations

import pytest

from grader.rubric import ShortAnswerQuestion
from grader.scoring.features import ALTERNATIVES_CREDITED, FEATURES, answer_signals, prepare_question
from grader.scoring.lexicon import OFFERS_ALTERNATIVES

LABELS = {"correct": 1.0, "partially_correct": 0.5, "incorrect": 0.0}
ITEMS = ("1. A thick waxy cuticle covers the leaves. 2. Stomata close during the hottest hours of the day. "
         "3. Leaves are reduced to spines, which lose little water. 4. Roots grow deep to reach groundwater. "
         "5. Water is stored in fleshy stems.")
ANSWER = ("They close their stomata when it is hottest, and a cactus has spines instead of leaves, so less water "
          "is lost.")


@pytest.mark.parametrize("text", [
    "One of the following justifications should be given:",
    "Any of the following counts as correct.",
    "Possible challenges: 1. Security",
    "Possible Differences : The UDP header is shorter",
    "Alternatively, you can say that the tree has no loops.",
    "State at least 4 of the differences shown in the lecture.",
    "Eine der folgenden Antworten genügt.",
    "Mögliche Gründe: der Laden ist geschlossen.",
    "Alternativ kann man den Kunden fragen.",
])
def test_wordings_that_offer_alternatives(text):
    assert OFFERS_ALTERNATIVES.search(text)


@pytest.mark.parametrize("text", [
    "The cell state is updated additively, e.g. through the forget gate.",  # an example inside one point
    "Name the 3 service classes and explain their differences.",
    "State at least 4 objectives.",  # how many to give, not which of a list
    "There is one alternative answer, such as flooding.",
    "The impossible case: the queue is full.",
    "Z.B. die Begrüßung und die Verabschiedung.",
])
def test_wordings_that_offer_none(text):
    assert not OFFERS_ALTERNATIVES.search(text)


def _question(reference: str) -> ShortAnswerQuestion:
    return ShortAnswerQuestion(id="plants", prompt="Name two ways in which desert plants reduce water loss.",
                               reference_answers=(reference,))


@pytest.fixture(scope="module")
def questions():
    return _question("Possible adaptations: " + ITEMS), _question("Adaptations: " + ITEMS)


def test_an_answer_is_credited_with_the_alternatives_it_states_best(embedder, questions):
    offered, listed = (prepare_question(q, embedder, "en", LABELS) for q in questions)
    assert offered.alternatives and not listed.alternatives
    encoding = embedder.encode_tokens([ANSWER])[0]
    cover = FEATURES.index("ref_cover")
    concepts = FEATURES.index("concept_cover")
    best_two = answer_signals(offered, ANSWER, encoding).features
    every = answer_signals(listed, ANSWER, encoding).features
    # Two of the six sentences stated: the mean over the best two is far above the mean over all six.
    assert best_two[cover] > every[cover] + 0.25
    assert best_two[concepts] > every[concepts]
    assert ALTERNATIVES_CREDITED == 2


def test_an_off_topic_answer_gains_nothing_from_alternatives(embedder, questions):
    offered = prepare_question(questions[0], embedder, "en", LABELS)
    text = "I really enjoyed this module and the lecturer was great."
    features = answer_signals(offered, text, embedder.encode_tokens([text])[0]).features
    assert features[FEATURES.index("ref_cover")] < 0.3
    assert features[FEATURES.index("concept_cover")] == 0.0


def test_the_grade_follows(grader, questions):
    offered, listed = (grader.grade_answers(q, [ANSWER])[0] for q in questions)
    assert offered.points >= listed.points
    assert offered.probabilities["correct"] > listed.probabilities["correct"] + 0.05
    one = "Their stomata close in the heat of the day."  # one alternative of five
    offered, listed = (grader.grade_answers(q, [one])[0] for q in questions)
    assert offered.points > listed.points


def test_check_rubric_says_which_model_answers_offer_alternatives(tmp_path, capsys):
    from grader.cli import main

    path = tmp_path / "plants.yaml"
    path.write_text(f"""id: plants
language: en
questions:
  - id: water
    type: short_answer
    prompt: Name two ways in which desert plants reduce water loss.
    reference_answers: ["Possible adaptations:  {ITEMS}"]
  - id: light
    type: short_answer
    prompt: Why do leaves look green?
    reference_answers: ["Chlorophyll absorbs red and blue light, e.g. at 430 nm, and reflects green light."]
""")
    assert main(["check-rubric", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: question 'water': its model answer offers alternatives (\"Possible adaptations:\")" in out
    assert "credited with the 2 reference sentences it states best" in out
    assert "'light'" not in out
