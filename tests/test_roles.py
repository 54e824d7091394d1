"""Roles, negation and reversal: a concept counts only where it is stated about the right subject."""

from __future__ import annotations

import numpy as np
import pytest

from grader.rubric import KeyPhrase, ShortAnswerQuestion
from grader.scoring.roles import (ALL_ROLES, NO_ROLE, contrast_of, contrast_pairs, entities, reversed_spans,
                                  word_roles)
from grader.text import analyze

# A subject of its own: two protocols the prompt contrasts, and a reference that fixes the roles.
PROMPT = "Why does TCP deliver every byte in order, and why can UDP lose datagrams?"
REFERENCE = ("UDP sends each datagram once and never resends a lost one. TCP numbers every byte and "
             "retransmits segments rather than dropping them, so the receiver gets the stream complete and in order.")
RETRANSMITS = "lost segments are retransmitted until they are acknowledged"
FIRE_AND_FORGET = "each datagram is sent once with no retransmission"


@pytest.fixture(scope="module")
def network(embedder):
    from grader.engine import Grader

    question = ShortAnswerQuestion(
        id="net", prompt=PROMPT, reference_answers=[REFERENCE], max_points=2,
        key_phrases=[KeyPhrase(text=RETRANSMITS, points=1), KeyPhrase(text=FIRE_AND_FORGET, points=1)])
    grader = Grader(None, embedder=embedder)
    return grader, question


def _concepts(network, answer):
    grader, question = network
    return grader.grade_pairs([(question, answer)])[0].concepts


def test_entities_are_the_names_the_prompt_contrasts():
    assert entities(analyze(PROMPT)) == ("tcp", "udp")
    assert entities(analyze("What is the fundamental insight that lets LSTMs keep memory, and why do RNNs fail?")) \
        == ("lstm", "rnn")
    assert entities(analyze("Why does ice float on water?")) == ()  # nothing to contrast
    assert entities(analyze("What does TCP guarantee?")) == ()
    # sides that share words differ where they differ
    assert entities(analyze("How do current and voltage behave in resistors connected in series compared with "
                            "resistors connected in parallel?")) == ("serie", "parallel")
    assert entities(analyze("What is the difference between a stack and a queue?")) == ("stack", "queue")
    # a side is named by a word the prompt uses nowhere else ("congestion" is also the congestion window's),
    # read from the join outwards on either side ("by value", not "argument", of "passing an argument by value")
    assert entities(analyze("What is the difference between passing an argument by value and passing it by "
                            "reference?")) == ("value", "reference")
    assert entities(analyze("How does TCP's congestion window grow in slow start compared with congestion avoidance, "
                            "and what happens when a loss is detected?")) == ("start", "avoidance")


def test_a_clipped_name_names_the_entity_it_begins():
    a = analyze("by val the fn gets a copy\nby ref it gets an alias")
    by_word = {w.norm: int(r) for w, r in zip(a.words, word_roles(a, ("value", "reference")))}
    assert by_word["copy"] == 0 and by_word["alias"] == 1


def test_an_entity_named_as_a_reference_point_leaves_the_clause_to_the_one_before():
    a = analyze("The LSTM keeps a cell state. It is added to instead of multiplied like in the RNN.")
    by_word = {w.norm: int(r) for w, r in zip(a.words, word_roles(a, ("lstm", "rnn")))}
    assert by_word["added"] == 0


def test_each_word_is_about_the_entity_its_clause_names_or_the_last_named():
    text = "TCP numbers every byte, so nothing is lost. UDP does not, while both TCP and UDP use ports."
    a = analyze(text)
    roles = word_roles(a, ("tcp", "udp"))
    by_word = {w.norm: int(r) for w, r in zip(a.words, roles)}
    assert by_word["numbers"] == 0 and by_word["lost"] == 0  # the second clause continues TCP
    assert by_word["does"] == 1
    assert by_word["ports"] == ALL_ROLES
    assert (word_roles(a, ()) == NO_ROLE).all()


def test_a_clause_is_about_its_subject_not_what_it_is_compared_with():
    def roles_of(text, names=("tcp", "udp")):
        a = analyze(text)
        return {w.norm: int(r) for w, r in zip(a.words, word_roles(a, names))}

    assert roles_of("TCP has more overhead than UDP")["overhead"] == 0
    assert roles_of("UDP is faster compared with TCP")["faster"] == 1
    assert roles_of("TCP braucht mehr Zeit als UDP")["zeit"] == 0
    # "rather than" contrasts two claims, and a clause that names both as subjects is about both.
    assert roles_of("TCP rather than UDP retransmits")["retransmits"] == ALL_ROLES
    assert roles_of("TCP and UDP use ports")["ports"] == ALL_ROLES
    # Both compared with a third thing: still about both.
    assert roles_of("TCP and UDP are slower than shared memory")["slower"] == ALL_ROLES


def test_contrast_pairs_come_from_the_reference():
    pairs = contrast_pairs([analyze("The value is stored additively rather than multiplicatively."),
                            analyze("Heat flows in, not out, and the model stays linear.")])
    assert ("addit", "multip") in pairs and ("multip", "addit") in pairs
    assert not any("model" in p for p in pairs)
    assert contrast_pairs([analyze("The server does not respond.")]) == frozenset()  # no comma: no opposition


def test_a_key_phrase_may_draw_its_own_opposites_and_asserts_only_its_side():
    phrasing = analyze("the memory is added to rather than overwritten")
    pairs = contrast_pairs([phrasing])
    assert ("addit", "overwr") in pairs  # "add" is of the family of added, adds, additive, summed
    contrast = contrast_of([phrasing, analyze("a store updated additively")], pairs)
    assert contrast.own == {"addit"} and contrast.opposite == {"overwr"}  # "overwritten" is denied, not asserted
    a = analyze("the memory is completely overwritten at every step")
    assert reversed_spans(a, contrast, np.array([[0, len(a.words)]]))[0][0]


def test_a_span_with_the_opposite_word_or_another_number_reverses_the_concept():
    pairs = contrast_pairs([analyze("It is updated additively rather than multiplicatively.")])
    contrast = contrast_of([analyze("the state is updated additively"), analyze("a gate near 1 keeps it")], pairs)
    for text, reverses in [("the state is updated multiplicatively", True),
                           ("the state is updated additively", False),
                           ("the state is not updated multiplicatively", False),
                           ("the gate stays near 0 here", True),
                           ("the gate stays near 1 here", False),
                           ("over 100 steps the gate is open", False)]:
        a = analyze(text)
        bounds = np.array([[0, len(a.words)]])
        assert bool(reversed_spans(a, contrast, bounds)[0][0]) is reverses, text
    # the short verb a longer word family derives from: "adds" is of "additively", "multiply" of "multiplicatively"
    mult = contrast_of([analyze("the balance is multiplied by the rate every year")], pairs)
    for text, reverses in [("the bank adds the same amount every year", True),
                           ("the bank added interest every year", True),
                           ("the bank multiplies the balance every year", False),
                           ("the bank addresses the balance every year", False)]:
        a = analyze(text)
        assert bool(reversed_spans(a, mult, np.array([[0, len(a.words)]]))[0][0]) is reverses, text
    hedge = analyze("the state is updated by addition or maybe multiplicatively, additively perhaps")
    assert reversed_spans(hedge, contrast, np.array([[0, len(hedge.words)]]))[1][0]  # both sides: neither stated
    # either/or: a span holding one side of the hedge asserts it no more than the whole
    one_side = analyze("the memory is updated by addition, or possibly multiplication, I am not sure which")
    upto = [w.norm for w in one_side.words].index("addition") + 1
    assert reversed_spans(one_side, contrast, np.array([[0, upto]]))[1][0]
    contrasted = analyze("the old model is updated multiplicatively while the new one is updated by addition")
    start = [w.norm for w in contrasted.words].index("new")
    assert not reversed_spans(contrasted, contrast, np.array([[start, len(contrasted.words)]]))[1][0]


def test_a_concept_said_of_the_other_entity_is_negated(network):
    right, wrong = (_concepts(network, f"{x} retransmits lost segments until they are acknowledged.")[0]
                    for x in ("TCP", "UDP"))
    assert right.found and not right.negated
    assert not wrong.found and wrong.negated


def test_role_swap_in_one_sentence_credits_neither_side(network):
    swapped = _concepts(network, "UDP retransmits lost segments until they are acknowledged, while TCP sends "
                                 "each datagram once with no retransmission.")
    assert not any(c.found for c in swapped)
    assert all(c.negated for c in swapped)
    right = _concepts(network, "TCP retransmits lost segments until they are acknowledged, while UDP sends "
                               "each datagram once with no retransmission.")
    assert all(c.found and not c.negated for c in right)
    assert "datagram" in right[1].evidence and "TCP" not in right[1].evidence  # from the clause that states it


def test_a_sentence_built_on_a_reversed_claim_states_nothing_else():
    from grader.scoring.roles import reversed_sentences

    pairs = contrast_pairs([analyze("TCP numbers every byte and retransmits rather than drops lost segments.")])
    retransmits = contrast_of([analyze("TCP retransmits lost segments")], pairs)
    text = ("TCP drops lost segments, so the receiver reorders them by sequence number. "
            "UDP drops datagrams. TCP retransmits lost segments.")
    a = analyze(text)
    roles = word_roles(a, ("tcp", "udp"))
    marked = reversed_sentences(a, retransmits, roles, 0)
    first = a.sentences[0]
    assert marked[first[0]:first[1]].all()  # "TCP drops": the whole sentence rests on the reversal
    assert not marked[first[1]:].any()  # UDP dropping is true, and TCP retransmitting is the concept itself
    # only a content word is of a word family: "over" is no "overwritten"
    over = contrast_of([analyze("segments are kept rather than overwritten")],
                       contrast_pairs([analyze("segments are kept rather than overwritten")]))
    b = analyze("TCP keeps segments over a long time")
    assert not reversed_sentences(b, over, word_roles(b, ("tcp", "udp")), 0).any()


def test_a_negated_concept_is_not_found(network):
    c = _concepts(network, "TCP does not retransmit lost segments, it just moves on.")[0]
    assert not c.found


def test_questions_without_contrast_are_matched_as_before(embedder):
    from grader.engine import Grader

    question = ShortAnswerQuestion(id="ice", prompt="Why does ice float on water?",
                                   reference_answers=["Ice is less dense than liquid water."], max_points=1,
                                   key_phrases=[KeyPhrase(text="ice is less dense than water", points=1)])
    result = Grader(None, embedder=embedder).grade_pairs([(question, "Ice is less dense than water.")])[0]
    assert result.concepts[0].found and not result.concepts[0].negated


# -- the rubric's own question: three answers that used to be misread ---------------------
def _q5(grader, answer):
    result = grader.grade("q5", answer)
    return {c.concept: c for c in result.concepts}, result


def test_additive_cell_state_is_not_the_parameters_misconception(grader):
    _, result = _q5(grader, "LSTMs keep a separate cell state which is updated additively rather than "
                            "multiplicatively, so the gradient does not vanish.")
    assert not any("parameters" in m.misconception for m in result.misconceptions)


def test_the_parameters_misconception_is_no_cell_state(grader):
    concepts, result = _q5(grader, "Vanilla RNNs have too few parameters to capture distant patterns. The LSTM adds "
                                   "extra weight matrices for the gates, which gives it enough capacity.")
    assert any("parameters" in m.misconception for m in result.misconceptions)
    assert not any(c.found for c in concepts.values())
    assert "You stated" not in result.feedback


def test_a_clause_near_a_misconception_nobody_stated_still_states_its_key_phrase(grader):
    # On its own the clause reads closer to "a growing memory buffer" than to any key phrase; nothing here says it.
    concepts, result = _q5(grader, "The LSTM keeps a memory line that is only ever added to, never overwritten.")
    assert concepts["a separate cell state that is updated additively"].found
    assert all(m.uncertain for m in result.misconceptions)  # at most a doubt for a human, never asserted


def test_a_half_stated_in_the_key_phrases_own_words_counts(grader):
    # "vanishing/exploding grads" reads far from "gradients vanish or explode" as a vector, but says it word for word.
    concepts, _ = _q5(grader, "RNN: shared weights used at every step → vanishing/exploding grads.")
    same = concepts["the same weight matrix is multiplied at every step, so gradients vanish or explode"]
    assert same.found and "shared weights" in same.evidence and "grads" in same.evidence


def test_words_a_misconception_uses_too_do_not_name_a_key_phrase(grader):
    # "hidden state" is in one phrasing of "multiplicative recurrence", and in the "buffer" misconception too.
    concepts, _ = _q5(grader, "A plain RNN only remembers its latest hidden state.")
    assert not concepts["multiplicative recurrence"].found


def test_one_clause_joined_by_and_says_one_thing_of_each_side(grader):
    concepts, _ = _q5(grader, "The RNN multiplies its hidden state by the same weight matrix at every step and the "
                              "LSTM adds to its cell state through gates.")
    recurrence, cell = concepts["multiplicative recurrence"], concepts["a separate cell state that is updated additively"]
    assert recurrence.found and "LSTM" not in recurrence.evidence
    assert cell.found and "RNN" not in cell.evidence
    swapped, _ = _q5(grader, "The vanilla RNN uses additive updates with gating and the LSTM uses multiplicative "
                             "recurrence.")
    assert swapped["additive updates with gating"].negated and swapped["multiplicative recurrence"].negated
    assert not any(c.found for c in swapped.values())


def test_swapped_roles_earn_no_concept(grader):
    concepts, _ = _q5(grader, "The vanilla RNN uses additive updates, which is why its gradients vanish, while "
                              "the LSTM uses multiplicative recurrence with gating")
    for name in ("additive updates with gating", "multiplicative recurrence",
                 "a separate cell state that is updated additively"):
        assert not concepts[name].found, name
    assert concepts["additive updates with gating"].negated
    assert concepts["multiplicative recurrence"].negated


def test_evidence_is_the_clause_about_the_right_subject(grader):
    concepts, _ = _q5(grader, "The RNN multiplies by the same weight matrix at every step so the gradients vanish "
                              "or explode, while the LSTM's cell state is updated additively through gates")
    gating = concepts["additive updates with gating"]
    assert gating.found and "RNN" not in gating.evidence and "additively" in gating.evidence
    same = concepts["the same weight matrix is multiplied at every step, so gradients vanish or explode"]
    assert same.found and "LSTM" not in same.evidence


# -- operations named in other words ---------------------------------------------------
def test_words_for_one_operation_are_one_family():
    from grader.scoring.phrases import content_stem_set

    assert "addit" in content_stem_set(analyze("new content is summed in"))
    assert "addit" in content_stem_set(analyze("the old value plus the new one"))
    assert "multip" in content_stem_set(analyze("a product of matrices"))
    assert "multip" not in content_stem_set(analyze("the layer produces an output"))  # "produce" is not "product"
    assert content_stem_set(analyze("it is applied again and again")) >= {"recurr"}
    # "at every time step" says the operation recurs: its words are that one family, not "time" and "step"
    assert content_stem_set(analyze("multiplied at every time step")) == {"multip", "recurr"}
    assert content_stem_set(analyze("valves and gates")) == {"gate"}


def test_a_paraphrase_by_other_operation_words_states_the_concept(grader):
    concepts, _ = _q5(grader, "In a plain RNN the gradient is a product of the same recurrent matrix taken again and "
                              "again, so it vanishes. In the LSTM new content is summed into the memory cell, and "
                              "learned valves decide how much of it is kept.")
    assert concepts["multiplicative recurrence"].found
    assert "product" in concepts["multiplicative recurrence"].evidence
    assert concepts["additive updates with gating"].found
    assert "summed" in concepts["additive updates with gating"].evidence


def test_roles_swapped_in_other_operation_words_are_reversals(grader):
    concepts, result = _q5(grader, "The vanilla RNN sums its input into the hidden state at every step. The LSTM "
                                   "takes a product of its gates and the old cell at every step.")
    for name in ("additive updates with gating", "multiplicative recurrence",
                 "a separate cell state that is updated additively"):
        assert not concepts[name].found and concepts[name].negated, name
    assert result.label == "incorrect"


def test_a_true_sentence_about_the_other_entity_is_no_reversal(grader):
    # The LSTM's gradient passing back unchanged reads like the RNN's vanishing gradient, but says something else.
    concepts, result = _q5(grader, "The LSTM has a separate cell state updated additively with forget and input gates, "
                                   "and when the forget gate is near 1 the gradient passes back unchanged.")
    same = concepts["the same weight matrix is multiplied at every step, so gradients vanish or explode"]
    assert not same.found and not same.negated
    assert "opposite" not in result.feedback


def test_what_a_phrasing_contrasts_with_is_not_needed_to_state_it():
    from grader.scoring.phrases import content_stem_set

    assert content_stem_set(analyze("the cell state is added to rather than overwritten")) == {"cell", "state", "addit"}
    assert content_stem_set(analyze("updated additively instead of multiplicatively")) == {"updat", "addit"}
    assert "overwr" in content_stem_set(analyze("the cell state is not overwritten"))  # a denial is the claim


def test_a_span_asserting_both_sides_reverses_nothing_and_an_either_or_states_neither():
    pairs = contrast_pairs([analyze("It is updated additively rather than multiplicatively.")])
    contrast = contrast_of([analyze("the state is updated additively")], pairs)
    both = analyze("the new value is the old value scaled by a keep factor plus the new candidate")
    reversing, mixed = reversed_spans(both, contrast, np.array([[0, len(both.words)]]))
    assert not reversing[0] and not mixed[0]
    hedge = analyze("the state is updated by addition, or possibly multiplication")
    reversing, mixed = reversed_spans(hedge, contrast, np.array([[0, len(hedge.words)]]))
    assert not reversing[0] and mixed[0]


def test_naming_the_entity_and_the_concepts_subject_states_nothing(grader):
    # "the LSTM" and "cell state" are the question's topic: the claim (updated additively) is not there
    concepts, _ = _q5(grader, "Vanilla RNNs forget. The LSTM fixes that with its cell state.")
    cell = concepts["a separate cell state that is updated additively"]
    assert not cell.found


REVERSED_GATE = ("The RNN multiplies its hidden state by the same weight matrix at every step, so the gradients "
                 "vanish or explode. In the LSTM, when the forget gate is close to 0 the old cell state is preserved.")


def test_a_reversed_concept_costs_its_reversal_penalty_and_its_sentence_states_nothing_else(grader, rubric):
    from grader.engine import Grader

    concepts, result = _q5(grader, REVERSED_GATE)
    gate = concepts["a forget gate near 1 preserves information and the gradient"]
    assert gate.negated and not gate.found
    # the sentence with the wrong number states no other concept, not even by its words ("cell state")
    assert concepts["a separate cell state that is updated additively"].strength == 0
    assert result.points == 1.5  # two concepts, less half a point for the reversed one

    data = rubric.model_dump()
    q5 = next(q for q in data["questions"] if q["id"] == "q5")
    next(k for k in q5["key_phrases"] if k["text"].startswith("a forget gate"))["reversal_penalty"] = 0
    lenient = Grader(type(rubric).model_validate(data), embedder=grader.embedder)
    assert lenient.grade("q5", REVERSED_GATE).points == 2.0


def test_a_number_after_a_function_word_contradicts_only_in_the_concepts_own_words():
    from grader.scoring.roles import misnumbered_sentences

    contrast = contrast_of([analyze("when the forget gate is close to one the gradient passes")], frozenset())
    assert misnumbered_sentences(analyze("The forget gate is close to 0 here."), contrast).any()
    assert not misnumbered_sentences(analyze("The product of the weights makes the gradient go to zero."),
                                     contrast).any()


def test_a_wrong_number_silences_only_the_part_of_its_sentence_that_rests_on_it(grader):
    # the first statement stands on its own: ", and when ..." opens another part of the sentence
    concepts, _ = _q5(grader, "The LSTM's cell state is updated by adding the gated new input to the old state, "
                              "and when the forget gate is close to 0 the old memory is kept intact.")
    assert concepts["a separate cell state that is updated additively"].found
    assert concepts["a forget gate near 1 preserves information and the gradient"].negated
    # a statement with its condition rests on it
    concepts, _ = _q5(grader, "The cell state is updated additively, as long as the forget gate is close to 0.")
    assert not concepts["a separate cell state that is updated additively"].found


def test_what_one_phrasing_adds_is_not_the_concept(grader):
    # "the hidden state" is in one phrasing of "multiplicative recurrence"; the claim is the repeated product
    concepts, _ = _q5(grader, "The vanilla RNN only keeps the last hidden state, which is overwritten each step, "
                              "so it forgets.")
    assert not concepts["multiplicative recurrence"].found


def test_topic_words_weigh_half_in_a_word_match(grader, rubric):
    from grader.scoring.phrases import FOUND, AnswerSpans

    prepared = grader.prepare(next(q for q in rubric.questions if q.id == "q5"))
    text = "The LSTM: own memory cell, and new info is summed to the old one."
    encoding = grader.encode_answers([text])[text]
    spans = AnswerSpans(analyze(text, prepared.language), encoding, prepared.topic, prepared.names, None,
                        prepared.spelling)
    spans.match_all(prepared.key_targets)
    cell = next(t for t in prepared.key_targets if t.key == "a separate cell state that is updated additively")
    # "the cell state is added to": "cell" and "state" are the question's topic, "added" the concept's claim
    assert spans._lexical(cell)[0] >= FOUND


def test_an_x_with_y_concept_is_read_as_both_parts():
    from grader.scoring.phrases import qualified_parts

    assert qualified_parts("additive updates with gating", "en") == (frozenset({"addit", "updat"}), frozenset({"gate"}))
    assert qualified_parts("a cell state under the control of gates", "en")[1] == frozenset({"gate"})
    assert qualified_parts("Speicher mit Toren", "de") is not None
    assert qualified_parts("multiplicative recurrence", "en") is None
    assert qualified_parts("with gates", "en") is None  # no X
    assert qualified_parts("gates with gates", "en") is None  # X and Y are one thing


def test_an_x_with_y_concept_needs_both_in_the_sentence_that_states_it(embedder):
    from grader.engine import Grader

    key = "resending lost segments with acknowledgements"
    question = ShortAnswerQuestion(
        id="ack", prompt="How does a reliable transport protocol make sure that every segment arrives?",
        reference_answers=["The sender resends every segment the receiver has not acknowledged in time."],
        max_points=2, key_phrases=[KeyPhrase(text=key, points=1),
                                   KeyPhrase(text="a checksum detects corrupted segments", points=1)])
    grader = Grader(None, embedder=embedder)

    def found(answer):
        return next(c for c in grader.grade_pairs([(question, answer)])[0].concepts if c.concept == key).found

    assert found("Lost segments are resent until the receiver acknowledges them.")
    assert found("The sender resends a segment when its acknowledgement times out.")
    assert not found("The sender simply resends lost segments.")  # X without Y
    assert not found("The receiver sends acknowledgements to the sender.")  # Y without X
    # X and Y, each in a sentence of its own and about something else, do not make the concept either
    assert not found("Lost segments are resent. Acknowledgements are counted for statistics on another host.")


@pytest.mark.parametrize("answer", ["The cell is not updated additively.", "The LSTM's cell is not updated additively.",
                                    "The LSTM's cell state is never updated by addition."])
def test_a_span_that_names_the_concepts_words_only_to_deny_them_does_not_state_it(grader, answer):
    # "The cell is not updated" reads like "a cell state that is updated" to an encoder
    concepts, result = _q5(grader, answer)
    cell = concepts["a separate cell state that is updated additively"]
    assert not cell.found and cell.negated
    assert "You stated" not in result.feedback


def test_a_misconception_needs_its_own_words_too(grader):
    # "the LSTM's memory" reads close to "a growing memory buffer", but says nothing of a buffer
    _, result = _q5(grader, "Because the LSTM's memory cell is updated by adding new information, controlled by "
                            "the input and forget gates, gradients don't vanish.")
    assert result.misconceptions == ()
    _, result = _q5(grader, "LSTMs store every previous hidden state so they can look them up later.")
    assert [m.misconception for m in result.misconceptions] == ["LSTMs keep all past hidden states in a growing "
                                                                 "memory buffer"]



def test_misconceptions_denied_in_a_long_clause_are_not_held(grader):
    # "attention" lies beyond the negation's five words, "all their past hidden states" beside a denied "keep"
    _, result = _q5(grader, "LSTMs don't look back at old time steps with attention, and they don't keep a list of "
                            "all their past hidden states either, there's just one cell vector. That vector is "
                            "updated by addition.")
    assert result.misconceptions == ()
    assert "misconception" not in {f.code for f in result.flags}
    # a denial of "instead of one" reaches neither past its bracket nor into a clause of its own
    _, result = _q5(grader, "LSTM has more parameters (4 weight matrices instead of one) which gives it the capacity "
                            "to store long-term patterns.")
    assert any("parameters" in m.misconception and not m.uncertain for m in result.misconceptions)



@pytest.mark.parametrize("answer", ["The forget gate must not be close to 1.",
                                    "The RNN multiplies. But the forget gate must not be close to 1."])
def test_a_denied_number_denies_the_concept_that_fixes_it(grader, answer):
    # "1" is no content word, yet it is what "a forget gate near 1" says
    concepts, _ = _q5(grader, answer)
    assert not concepts["a forget gate near 1 preserves information and the gradient"].found


def test_an_attribution_the_student_cannot_remember_states_nothing(grader):
    concepts, _ = _q5(grader, "The cell state is either added to at each step or multiplied by the forget gate, I can "
                              "never remember which.")
    assert not any(c.found for c in concepts.values())


NEGATIVE = "UDP has no congestion control"


@pytest.fixture(scope="module")
def negative(embedder):
    from grader.engine import Grader

    question = ShortAnswerQuestion(
        id="cc", prompt="Why does TCP slow down when packets are lost, while UDP keeps sending at the same rate?",
        reference_answers=["TCP treats loss as congestion and halves its congestion window. UDP has no congestion "
                           "control at all: it keeps sending at the application's rate."],
        max_points=2, key_phrases=[
            KeyPhrase(text="TCP halves its congestion window when it detects loss", points=1),
            KeyPhrase(text=NEGATIVE, points=1, alternatives=["UDP does not adapt its sending rate to the network"])])
    return Grader(None, embedder=embedder), question


@pytest.mark.parametrize("answer", ["UDP has no congestion control.", "UDP lacks any congestion control, so it keeps "
                                    "sending.", "UDP does not adapt its sending rate to the network.",
                                    "UDP never slows down because it has no congestion control mechanism."])
def test_a_concept_that_says_something_is_not_so_is_stated_by_a_negation(negative, answer):
    grader, question = negative
    concept = next(c for c in grader.grade_pairs([(question, answer)])[0].concepts if c.concept == NEGATIVE)
    assert concept.found and not concept.negated


def test_a_negative_concept_is_contradicted_by_asserting_what_it_denies(negative):
    from grader.scoring.phrases import is_negative, signed_stem_set

    assert is_negative(analyze(NEGATIVE)) and not is_negative(analyze("UDP keeps sending at the same rate"))
    assert "~conges" in signed_stem_set(analyze(NEGATIVE)) and "udp" in signed_stem_set(analyze(NEGATIVE))
    grader, question = negative
    concept = next(c for c in grader.grade_pairs([(question, "UDP adapts its sending rate to the network.")])[0]
                   .concepts if c.concept == NEGATIVE)
    assert not concept.found


def test_a_denied_cause_is_no_misconception(embedder):
    from grader.engine import Grader
    from grader.rubric import Misconception

    question = ShortAnswerQuestion(
        id="cpu", prompt="Why does TCP slow down when packets are lost, while UDP keeps sending at the same rate?",
        reference_answers=["TCP treats loss as congestion and halves its congestion window."], max_points=1,
        key_phrases=[KeyPhrase(text="TCP halves its congestion window when it detects loss", points=1)],
        misconceptions=[Misconception(text="TCP slows down because the receiver's CPU is overloaded", penalty=1)])
    grader = Grader(None, embedder=embedder)
    denied, stated = grader.grade_pairs([
        (question, "TCP doesn't slow down because of the receiver's CPU; it slows down because loss signals "
                   "congestion."),
        (question, "TCP slows down because the receiving computer's CPU is overloaded.")])
    assert denied.misconceptions == ()
    assert [m.misconception for m in stated.misconceptions] == [question.misconceptions[0].text]
