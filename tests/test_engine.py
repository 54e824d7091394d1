"""Grading the example quiz's question 5 end to end, with the real model and the shipped combiner."""

from __future__ import annotations

import json

import pytest

MODEL = ("The vanilla RNN repeatedly multiplies the hidden state by the same weight matrix, causing gradients to "
         "decay or explode exponentially over long sequences. The LSTM introduces a separate cell state that is "
         "updated additively rather than multiplicatively, and learned gates determine how much old information to "
         "keep and how much new information to write. Because the cell state update is additive and gated, "
         "gradients can flow back through time without being repeatedly squashed — information can persist across "
         "hundreds of steps.")
PARAPHRASE = ("In a plain RNN the hidden state is pushed through the same recurrent weights at each time step, so "
              "during backpropagation the gradient shrinks or blows up exponentially. An LSTM adds a distinct memory "
              "cell whose content is changed by adding to it, and gates decide what to forget and what to write; "
              "with the forget gate close to one, the gradient travels back over many steps unchanged.")
VANISHING_ONLY = ("The vanilla RNN suffers from the vanishing gradient problem: gradients get smaller and smaller as "
                  "they are propagated back through many time steps, so it cannot learn long-range dependencies.")
WRONG_OPTIONS = {
    "A": "Vanilla RNNs have too few parameters to capture distant patterns; LSTMs add more weight matrices that "
         "explicitly attend to earlier time steps.",
    "C": "Vanilla RNNs process each time step independently and discard prior context; LSTMs concatenate all past "
         "hidden states into a growing memory buffer.",
    "D": "Vanilla RNNs cannot handle sequences longer than the training window; LSTMs use attention to directly "
         "access any past time step regardless of distance.",
}


def test_model_answer_gets_full_points(grader):
    result = grader.grade("q5", MODEL)
    assert result.points == result.max_points == 5
    assert result.label == "correct"
    assert all(c.found for c in result.concepts)


def test_paraphrase_without_key_phrases_is_correct(grader):
    assert "additive updates with gating" not in PARAPHRASE.lower()
    assert "multiplicative recurrence" not in PARAPHRASE.lower()
    result = grader.grade("q5", PARAPHRASE)
    assert result.points >= 0.8 * result.max_points
    assert result.label == "correct"


def test_vanishing_gradient_only_is_a_vague_true_statement_and_lists_what_is_missing(grader):
    # q5's key phrases carry all its points, so its grade is their points: naming the vanishing gradient
    # without its cause states none of them, worth half a point at most.
    result = grader.grade("q5", VANISHING_ONLY)
    assert result.points <= 0.5 and result.label == "incorrect"
    missing = result.concepts_missing
    assert "additive updates with gating" in missing
    assert "a separate cell state that is updated additively" in missing
    assert "Missing:" in result.feedback


@pytest.mark.parametrize("option", sorted(WRONG_OPTIONS))
def test_wrong_options_of_question_1_are_incorrect(grader, option):
    result = grader.grade("q5", WRONG_OPTIONS[option])
    assert result.points <= 0.3 * result.max_points
    assert result.label == "incorrect"
    assert result.misconceptions, "a wrong option states a misconception of the rubric"


@pytest.mark.parametrize("blank", ["", "   ", "\n\t", None])
def test_empty_answer_gets_zero_without_error(grader, blank):
    result = grader.grade("q5", blank)
    assert result.points == 0 and result.label == "incorrect"
    assert [f.code for f in result.flags] == ["empty"]


def test_negated_concept_is_not_found(grader):
    result = grader.grade("q5", "The LSTM does not update its cell state additively, and it has no gates.")
    by_name = {c.concept: c for c in result.concepts}
    assert not by_name["a separate cell state that is updated additively"].found
    assert not by_name["additive updates with gating"].found


def test_feedback_never_reveals_the_model_answer(grader, rubric):
    reference = rubric.question("q5").reference_answers[0]
    sentences = [s.strip() for s in reference.split(".") if len(s.strip()) > 30]
    for answer in [VANISHING_ONLY, WRONG_OPTIONS["A"], "I don't know", PARAPHRASE]:
        feedback = grader.grade("q5", answer).feedback
        assert not any(s in feedback for s in sentences)


def test_result_json_has_the_documented_fields(grader):
    data = json.loads(json.dumps(grader.grade("q5", PARAPHRASE).to_dict()))
    for key in ["points", "max_points", "label", "confidence", "needs_review", "concepts", "feedback", "flags"]:
        assert key in data
    assert {"found", "strength", "evidence"} <= set(data["concepts"][0])
    assert 0.0 <= data["confidence"] <= 1.0


def test_choice_questions_graded_exactly(grader):
    assert grader.grade("q1", "B").points == 1
    assert grader.grade("q1", "b)").points == 1
    assert grader.grade("q1", "A").points == 0
    assert grader.grade("q3", "T").points == 1
    assert grader.grade("q3", "false").points == 0
    assert grader.grade("q4", "False").points == 1
    assert not grader.grade("q1", "B").needs_review  # the example quiz's key is confirmed
    unconfirmed = grader.rubric.question("q1").model_copy(update={"needs_confirmation": True})
    assert grader.grade_pairs([(unconfirmed, "B")])[0].needs_review  # an inferred key awaits confirmation


def test_grade_many_matches_grade(grader):
    answers = [("q5", MODEL), ("q5", VANISHING_ONLY), ("q3", "True"), ("q5", "  " + MODEL.upper() + " ")]
    batch = grader.grade_many(answers)
    assert batch[0].points == grader.grade("q5", MODEL).points
    assert batch[1].points == grader.grade("q5", VANISHING_ONLY).points
    assert batch[2].points == 1
    assert batch[3] is batch[0]  # identical after case/space normalisation: graded once


def test_score_cli_prints_json(capsys, rubric):
    from grader.cli import main
    from tests.conftest import RUBRIC

    assert main(["score", "--rubric", str(RUBRIC), "--question", "q5", MODEL]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["points"] == 5 and data["label"] == "correct"
    assert main(["score", "--rubric", str(RUBRIC), "--question", "nope", "x"]) == 2
    assert "question 'nope' is not in rubric" in capsys.readouterr().err


def test_an_embedder_that_is_empty_as_a_container_is_still_the_one_used(embedder):
    """An empty CachingEmbedder has length 0; 'embedder or default' once swapped it for the default encoder."""
    from grader.engine import Grader
    from grader.evaluation.training import CachingEmbedder

    cached = CachingEmbedder(embedder)
    assert len(cached) == 0
    assert Grader(None, embedder=cached).embedder is cached
    assert Grader.for_signals(cached).embedder is cached
