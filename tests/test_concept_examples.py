"""Concept-level examples: an instructor's sentence that states a concept, or one that does not."""

from __future__ import annotations

import pytest
import yaml

from grader.rubric import ConceptExample, Rubric
from tests.conftest import RUBRIC

SCALED = "The RNN is a chain of layers where the signal gets weaker each time it goes through."
REVERSED = "The vanilla RNN uses additive updates, which is why its gradients vanish."


def _rubric(examples: dict[int, list[dict]]) -> Rubric:
    data = yaml.safe_load(RUBRIC.read_text(encoding="utf-8"))
    q5 = next(q for q in data["questions"] if q["id"] == "q5")
    for k, ex in examples.items():
        q5["key_phrases"][k]["examples"] = ex
    return Rubric.model_validate(data)


def _concept(grader_cls, embedder, rubric, answer, k):
    grader = grader_cls(rubric, embedder=embedder)
    result = grader.grade("q5", answer)
    return result.concepts[k]


@pytest.fixture(scope="module")
def grader_cls():
    from grader.engine import Grader

    return Grader


def test_examples_are_parsed_and_validated():
    rubric = _rubric({0: [{"text": "gates control an additive update", "states": True}]})
    kp = rubric.question("q5").key_phrases[0]
    assert kp.examples == (ConceptExample(text="gates control an additive update", states=True),)
    with pytest.raises(Exception, match="states"):
        _rubric({0: [{"text": "no verdict"}]})


def test_a_positive_example_is_one_more_phrasing(grader_cls, embedder):
    before = _concept(grader_cls, embedder, _rubric({}), SCALED, 1)
    assert not before.found
    taught = _rubric({1: [{"text": "the signal gets weaker each time it passes through a layer", "states": True}]})
    after = _concept(grader_cls, embedder, taught, SCALED, 1)
    assert after.found and after.evidence


def test_a_negative_example_vetoes_a_match_closer_to_it(grader_cls, embedder):
    before = _concept(grader_cls, embedder, _rubric({}), REVERSED, 0)
    # "additive updates with gating" said of the RNN: the words, the wrong role; roles already reverse it
    assert not before.found and before.negated
    taught = _rubric({0: [{"text": "the RNN uses additive updates", "states": False}]})
    after = _concept(grader_cls, embedder, taught, REVERSED, 0)
    assert not after.found


def test_a_negative_example_leaves_true_statements_alone(grader_cls, embedder):
    answer = "The LSTM's cell state is updated additively under the control of gates."
    taught = _rubric({0: [{"text": "the RNN uses additive updates", "states": False}]})
    assert _concept(grader_cls, embedder, taught, answer, 0).found


def test_inline_question_carries_examples(grader_cls, embedder):
    from grader.api.schemas import InlineQuestion

    inline = InlineQuestion.model_validate({
        "prompt": "Why does ice float on water?", "reference_answers": ["Ice is less dense than liquid water."],
        "key_phrases": [{"text": "ice is less dense than water",
                         "examples": [{"text": "frozen water weighs less per litre", "states": True},
                                      {"text": "ice is denser than water", "states": False}]}]})
    question = inline.to_question()
    assert [e.states for e in question.key_phrases[0].examples] == [True, False]
    result = grader_cls(None, embedder=embedder).grade_pairs([(question, "Frozen water weighs less per litre.")])[0]
    assert result.concepts[0].found
