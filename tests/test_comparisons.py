"""Concepts on a subject of its own: comparison prompts, cause-and-effect key phrases, term lists, wrong reasons.

Nothing here is about recurrent networks: the same mechanisms must carry to any subject.
"""

from __future__ import annotations

import pytest

from grader.rubric import KeyPhrase, Misconception, ShortAnswerQuestion
from grader.scoring.phrases import cause_effect
from grader.scoring.roles import comparisons, entities
from grader.text import analyze

PROMPT = "What is the difference between mitosis and meiosis?"
REFERENCE = ("Mitosis makes two daughter cells that are genetically identical to the parent. Meiosis makes four "
             "daughter cells that are genetically different, each with half the chromosomes, because homologous "
             "chromosomes are separated and crossing over shuffles them.")
MEIOSIS = "meiosis produces four genetically different daughter cells"
MITOSIS = "mitosis produces two identical daughter cells"
CROSSING = "homologous chromosomes cross over, so the daughter cells differ genetically"
GROWTH = "meiosis happens because the body needs to grow and repair tissue"


def _graded(embedder, question: ShortAnswerQuestion):
    """(a grader without a rubric, the question it grades)."""
    from grader.engine import Grader

    return Grader(None, embedder=embedder), question


def _one_point_each(embedder, qid: str, prompt: str, reference: str, *key_phrases: KeyPhrase, misconceptions=()):
    return _graded(embedder, ShortAnswerQuestion(id=qid, prompt=prompt, reference_answers=[reference],
                                                 max_points=len(key_phrases), key_phrases=list(key_phrases),
                                                 misconceptions=list(misconceptions)))


@pytest.fixture(scope="module")
def biology(embedder):
    return _graded(embedder, ShortAnswerQuestion(
        id="bio", prompt=PROMPT, reference_answers=[REFERENCE], max_points=3,
        key_phrases=[KeyPhrase(text=MEIOSIS, points=1), KeyPhrase(text=MITOSIS, points=1),
                     KeyPhrase(text=CROSSING, points=1)],
        misconceptions=[Misconception(text=GROWTH, penalty=1)]))


def _grade(biology, answer):
    grader, question = biology
    return grader.grade_pairs([(question, answer)])[0]


def _stated(result) -> set[str]:
    return {c.concept for c in result.concepts if c.found and not c.negated}


@pytest.mark.parametrize("prompt, names", [
    (PROMPT, ("mitosis", "meiosis")),
    ("How does mitosis differ from meiosis in the number of daughter cells?", ("mitosis", "meiosis")),
    ("Compare a stack and a queue.", ("stack", "queue")),
    ("Stacks versus queues: when would you use each?", ("stack", "queue")),
    ("TCP vs. UDP: which one guarantees delivery?", ("tcp", "udp")),
    ("Explain the difference between supervised learning and unsupervised learning.", ("supervised", "unsupervised")),
    ("Contrast prokaryotic and eukaryotic cells.", ("prokaryotic", "eukaryotic")),
    ("Compare the vanilla RNN with the LSTM.", ("rnn", "lstm")),  # an acronym names its side
    # one word against several that share their head: the acronym of the head names neither side
    ("Explain the difference between recursive and iterative DNS resolution.", ("recursive", "iterative")),
    # "X and non-X" contrasts without a word of comparison
    ("How do competitive and non-competitive inhibitors reduce an enzyme's activity?",
     ("competitive", "noncompetitive")),
])
def test_a_comparison_prompt_names_its_two_sides(prompt, names):
    assert entities(analyze(prompt)) == names


def test_a_phrasing_is_about_the_side_it_measures_the_other_against():
    from grader.scoring.roles import text_role

    names = ("aerobic", "anaerobic")
    assert text_role(analyze("aerobic respiration releases more energy than anaerobic respiration"), names) == 0
    assert text_role(analyze("anaerobic respiration makes less ATP than aerobic respiration"), names) == 1
    assert text_role(analyze("aerobic and anaerobic respiration both start with glycolysis"), names) < 0


@pytest.mark.parametrize("prompt", [
    "Why does ice float on water and why does it melt?",  # "and" joins two questions, nothing is compared
    "What is the difference between the two, and why does it matter?",
    "What does TCP guarantee?",
])
def test_prompts_that_compare_nothing_name_no_sides(prompt):
    assert entities(analyze(prompt)) == ()


def test_cause_and_effect_phrasings_split_both_ways():
    assert cause_effect(CROSSING) == ("homologous chromosomes cross over", "the daughter cells differ genetically")
    assert cause_effect("prices rise because demand exceeds supply") == ("demand exceeds supply", "prices rise")
    assert cause_effect("prices rise because of demand") is None  # "because of" names no clause
    assert cause_effect(MEIOSIS) is None


def test_each_side_is_credited_for_its_own_statement(biology):
    stated = _stated(_grade(biology, "Meiosis gives four daughter cells that are all genetically different, while "
                                     "mitosis gives two identical copies of the parent cell."))
    assert {MEIOSIS, MITOSIS} <= stated


def test_swapped_sides_earn_neither_concept(biology):
    result = _grade(biology, "Mitosis produces four genetically different daughter cells, and meiosis produces two "
                             "identical ones.")
    assert not {MEIOSIS, MITOSIS} & _stated(result)


def test_a_cause_and_effect_concept_needs_both_halves(biology):
    both = _grade(biology, "In meiosis homologous chromosomes exchange pieces by crossing over. As a result the "
                           "daughter cells are genetically different.")
    concept = next(c for c in both.concepts if c.concept == CROSSING)
    assert concept.found and not concept.negated
    assert "crossing over" in concept.evidence and "genetically different" in concept.evidence  # cause to effect
    assert CROSSING not in _stated(_grade(biology, "Homologous chromosomes cross over during meiosis."))  # cause
    assert CROSSING not in _stated(_grade(biology, "The daughter cells of meiosis differ genetically."))  # effect


def test_a_bare_list_of_terms_states_no_concept(biology):
    for answer in ("Four genetically different daughter cells. Two identical daughter cells. Crossing over.",
                   "Genetic variation, crossing over, homologous chromosomes, daughter cells"):
        result = _grade(biology, answer)
        assert _stated(result) == set()
        assert all(c.awarded == 0 for c in result.concepts)


def test_the_wrong_reason_alone_is_the_misconception(biology):
    result = _grade(biology, "Meiosis is used to grow the body and repair damaged tissue.")
    assert [m.misconception for m in result.misconceptions if not m.uncertain] == [GROWTH]
    assert not _grade(biology, "Meiosis produces four genetically different daughter cells.").misconceptions


@pytest.mark.parametrize("text", ["There are not enough parameters.", "It is not only fast but also exact.",
                                  "Vanilla RNNs just dont have enough parameters to remember."])
def test_amount_words_after_a_negation_cue_negate_nothing(text):
    assert not any(analyze(text).negated)


def test_a_real_negation_still_negates():
    a = analyze("The cells are not identical.")
    assert a.negated[[w.norm for w in a.words].index("identical")]


def test_a_sentence_with_a_wrong_number_is_marked_as_a_false_claim():
    from grader.scoring.roles import contrast_of, misnumbered_sentences

    contrast = contrast_of([analyze("the reaction rate doubles for every rise of 10 degrees")], frozenset())
    a = analyze("For every rise of 50 degrees the rate doubles, so catalysts matter. Catalysts lower the barrier.")
    marked = misnumbered_sentences(a, contrast)
    first_end = a.sentences[0][1]
    assert marked[:first_end].all() and not marked[first_end:].any()
    assert not misnumbered_sentences(analyze("For every rise of 10 degrees the rate doubles."), contrast).any()


def test_topic_words_are_the_prompts_and_those_shared_by_three_concepts():
    from grader.scoring.phrases import common_roots

    concepts = [[analyze(t)] for t in (MEIOSIS, MITOSIS, CROSSING, GROWTH)]
    common = common_roots(analyze(PROMPT), concepts)
    assert {"mitosi", "meiosi", "daught", "cell"} <= common  # the prompt's; in three concepts
    assert not {"genet", "homolo", "four", "repair"} & common  # in two concepts or one: a concept's own


def test_with_sides_a_topic_word_is_one_of_three_concepts_of_one_side():
    from grader.scoring.phrases import common_roots

    # "binds" and "site" are said of each inhibitor: two concepts of one side and one of the other
    concepts = [[analyze(t)] for t in ("a competitive inhibitor binds to the active site",
                                       "a non-competitive inhibitor binds elsewhere and changes the shape",
                                       "a non-competitive inhibitor binds to the active site",
                                       "substrate is turned into product")]
    prompt = analyze("How do competitive and non-competitive inhibitors work?")
    assert "bind" in common_roots(prompt, concepts)
    assert "bind" not in common_roots(prompt, concepts, [0, 1, 1, -1])
    assert "bind" in common_roots(prompt, concepts, [1, 1, 1, -1])  # three of one side
    # concepts of no side count with each side: a word of three of them is a topic word however sides fall
    unsided = concepts + [[analyze("the substrate is turned into product quickly")],
                          [analyze("the product leaves the substrate behind")]]
    assert "substr" in common_roots(prompt, unsided, [0, 1, 1, -1, -1, -1])


def test_a_span_of_topic_words_alone_states_no_concept(biology):
    assert _stated(_grade(biology, "Both of them are about daughter cells.")) == set()


# -- a second subject: two data structures, one use each --------------------------------------
STACK_ORDER = "a stack removes the most recently added item first"
QUEUE_ORDER = "a queue removes the oldest item first"
STACK_USE = "a stack is used for function calls or undo"
QUEUE_USE = "a queue serves tasks or requests in arrival order"


@pytest.fixture(scope="module")
def structures(embedder):
    return _graded(embedder, ShortAnswerQuestion(
        id="ds", prompt="How does a stack differ from a queue in the order it removes items, and what is each "
                        "typically used for?",
        reference_answers=["A stack removes the most recently added item first (last in, first out), while a queue "
                           "removes the oldest item first (first in, first out). Stacks hold function calls and undo "
                           "histories; queues hold tasks or requests waiting to be served in arrival order."],
        max_points=4,
        key_phrases=[KeyPhrase(text=STACK_ORDER, points=1, alternatives=[
                         "a stack is last in, first out", "the last element pushed onto a stack is the first one popped"]),
                     KeyPhrase(text=QUEUE_ORDER, points=1, alternatives=["a queue is first in, first out"]),
                     KeyPhrase(text=STACK_USE, points=1, alternatives=["undo histories are stored on a stack"]),
                     KeyPhrase(text=QUEUE_USE, points=1,
                               alternatives=["queues are used for scheduling jobs in the order they arrive",
                                             "a print queue or a message queue buffers requests"])],
        misconceptions=[Misconception(text="a stack keeps its items sorted", penalty=1)]))


def test_a_word_of_one_phrasing_only_is_still_the_concepts_own(structures):
    # "scheduling" is in one alternative of the queue's use and in no other concept: it names that concept.
    result = _grade(structures, "Stacks hold undo histories. Queues are for job scheduling.")
    assert _stated(result) == {STACK_USE, QUEUE_USE}
    evidence = {c.concept: c.evidence for c in result.concepts}
    assert "scheduling" in evidence[QUEUE_USE] and "undo" in evidence[STACK_USE]


def test_one_clause_can_say_one_thing_of_each_side(structures):
    result = _grade(structures, "A stack pops the newest item and a queue dequeues the oldest item.")
    assert _stated(result) == {STACK_ORDER, QUEUE_ORDER}
    evidence = {c.concept: c.evidence for c in result.concepts}
    assert "queue" not in evidence[STACK_ORDER] and "stack" not in evidence[QUEUE_ORDER]
    # Both sides named together, one statement about both: it is about neither side alone.
    assert _stated(_grade(structures, "The stack and the queue both store items in memory.")) == set()


# -- a third subject: a comparative ----------------------------------------------------------
DENSITY = "ice is less dense than liquid water"


@pytest.fixture(scope="module")
def ice(embedder):
    return _one_point_each(embedder, "ice", "Why does ice float on liquid water?",
                           "Ice is less dense than liquid water. When water freezes, hydrogen bonds hold the molecules "
                           "in an open lattice that takes up more space than the liquid.",
                           KeyPhrase(text=DENSITY, points=1),
                           KeyPhrase(text="hydrogen bonds hold the molecules in an open lattice when water freezes",
                                     points=1))


@pytest.mark.parametrize("text, quantity, direction", [
    ("ice is less dense than liquid water", "dens", -1),
    ("Ice is denser than water.", "dens", 1),
    ("Ice has a lower density than water.", "densit", -1),
    ("The density of ice is lower.", "densit", -1),
    ("TCP is slower than UDP.", "fast", -1),
    ("The molecules are packed more tightly.", "tight", 1),
])
def test_comparatives_give_a_quantity_a_direction(text, quantity, direction):
    found = comparisons(analyze(text), frozenset({"dens"}))
    assert [(c.quantity, c.direction) for c in found] == [(quantity, direction)]
    assert comparisons(analyze("Water is not denser than ice."), frozenset({"dens"})) == []  # denied: no direction
    assert comparisons(analyze("Water boils at a hundred degrees."), frozenset({"dens"})) == []  # "water" is no "-er"


def test_a_comparative_turned_the_other_way_is_a_reversal(ice):
    result = _grade(ice, "Ice is denser than water.")
    concept = next(c for c in result.concepts if c.concept == DENSITY)
    assert concept.negated and not concept.found
    assert "opposite" in result.feedback


@pytest.mark.parametrize("answer", ["Ice has a lower density than liquid water.",
                                    "Liquid water has a higher density than ice.",  # the same, from the other side
                                    "Water is denser than ice."])
def test_the_same_comparison_in_other_words_states_the_concept(ice, answer):
    assert DENSITY in _stated(_grade(ice, answer))


def test_a_short_answer_that_states_a_key_phrase_does_not_restate_the_question(ice):
    result = _grade(ice, "Water is denser than ice, so ice floats.")
    assert "restates_question" not in {f.code for f in result.flags} and result.points > 0
    assert "restates_question" in {f.code for f in _grade(ice, "Ice floats on liquid water.").flags}


# -- a fourth subject: a concept that says something is not so --------------------------------
RETRANSMIT = "UDP does not retransmit lost packets, so the stream does not wait for them"
NO_CONTROL = "UDP has no congestion control"


@pytest.fixture(scope="module")
def transport(embedder):
    return _one_point_each(embedder, "udp", "Why is UDP often preferred over TCP for live video streaming?",
                           "UDP does not retransmit lost packets, so the stream never waits for data that arrives too "
                           "late to be shown. UDP has no congestion control, so it keeps sending at the rate the video "
                           "needs.",
                           KeyPhrase(text=RETRANSMIT, points=1,
                                     alternatives=["UDP never resends lost data, so playback does not stall"]),
                           KeyPhrase(text=NO_CONTROL, points=1, alternatives=[
                               "UDP does not reduce its sending rate when the network is congested"]))


def test_a_negation_is_no_word_of_what_it_denies(transport):
    # "no" is in every phrasing of "UDP has no congestion control", but it names no congestion control.
    assert _stated(_grade(transport, "UDP has no handshake, so the connection starts sooner.")) == set()
    assert _stated(_grade(transport, "UDP has no congestion control, so it keeps sending at the video's rate.")) \
        == {NO_CONTROL}  # nor does its "so ..." make it the other concept's "no retransmission, so no waiting"


# -- a fifth subject: misconceptions near the key phrases ------------------------------------
OXYGEN = "oxygen is released as a by-product"
SOIL, REVERSED, ROOTS = ("plants take their food from the soil",
                         "in photosynthesis plants take in oxygen and give off carbon dioxide",
                         "photosynthesis happens in the roots")


@pytest.fixture(scope="module")
def plants(embedder):
    return _one_point_each(
        embedder, "photo", "What does a plant need for photosynthesis, and what does it produce?",
        "Chlorophyll in the leaves captures light energy. The plant uses it to convert carbon dioxide from the air "
        "and water into glucose, and releases oxygen as a by-product.",
        KeyPhrase(text="chlorophyll captures light energy", points=1,
                  alternatives=["the green pigment in the leaves absorbs sunlight"]),
        KeyPhrase(text="carbon dioxide and water are converted into glucose", points=1),
        KeyPhrase(text=OXYGEN, points=1, alternatives=["the plant gives off oxygen"]),
        misconceptions=[Misconception(text=SOIL, penalty=1), Misconception(text=REVERSED, penalty=1),
                        Misconception(text=ROOTS, penalty=1)])


def _held(result) -> set[str]:
    return {m.misconception for m in result.misconceptions if not m.uncertain}


@pytest.mark.parametrize("answer", [
    "Plants do not get their food from the soil: they make it from air and water using light.",
    "The roots do not do photosynthesis; it happens in the leaves, whose green pigment absorbs the light.",
])
def test_a_denied_misconception_is_not_held(plants, answer):
    assert _held(_grade(plants, answer)) == set()


def test_the_words_of_a_stated_misconception_state_no_key_phrase(plants):
    result = _grade(plants, "In photosynthesis the plant breathes in oxygen and breathes out carbon dioxide.")
    assert _held(result) == {REVERSED}
    assert OXYGEN not in _stated(result)
    assert _held(_grade(plants, "Photosynthesis takes place in the roots.")) == {ROOTS}


@pytest.fixture(scope="module")
def enzymes(embedder):
    return _one_point_each(
        embedder, "enz", "How do competitive and non-competitive inhibitors reduce an enzyme's activity?",
        "A competitive inhibitor binds to the active site and competes with the substrate. A non-competitive "
        "inhibitor binds elsewhere on the enzyme and changes its shape.",
        KeyPhrase(text="a competitive inhibitor binds to the active site and competes with the substrate", points=1),
        KeyPhrase(text="a non-competitive inhibitor binds elsewhere and changes the enzyme's shape", points=1),
        misconceptions=[Misconception(text="enzymes are used up by the reactions they catalyse", penalty=1)])


def test_a_misconception_with_any_of_its_words_denied_is_not_held(enzymes):
    # "used" is denied, "reactions they catalyse" is not: half the shared words are not, yet nothing is claimed
    denied = _grade(enzymes, "Enzymes are not used up by all the many reactions that they catalyse, they are reused.")
    assert not denied.misconceptions  # not even as an uncertain one
    stated = _grade(enzymes, "Enzymes are used up by the reactions they catalyse.")
    assert _held(stated) == {"enzymes are used up by the reactions they catalyse"}


@pytest.fixture(scope="module")
def resolution(embedder):
    return _one_point_each(
        embedder, "dns", "Explain the difference between recursive and iterative DNS resolution, and why resolvers "
                         "cache answers.",
        "In recursive resolution the resolver does all the lookups itself and returns the final answer to the "
        "client. In iterative resolution each server returns a referral to the next server, and the asker follows "
        "it. Resolvers cache answers so that repeated lookups are answered locally, which cuts latency.",
        KeyPhrase(text="in recursive resolution the resolver does all the lookups and returns the final answer",
                  points=1),
        KeyPhrase(text="in iterative resolution each server returns a referral to the next server", points=1),
        KeyPhrase(text="caching avoids repeating lookups and reduces latency", points=1))


def test_a_concept_of_neither_side_is_credited_after_either(resolution):
    # the model answer's caching sentence follows one about the iterative side, but is about neither
    result = _grade(resolution, "Recursive resolution means the resolver does every lookup and hands back the final "
                                "answer. Resolvers cache answers to avoid repeating lookups and reduce latency.")
    assert "caching avoids repeating lookups and reduces latency" in _stated(result)


def test_sides_swapped_on_a_shared_head_earn_neither(resolution):
    result = _grade(resolution, "Iterative resolution is when the resolver does all the lookups and returns the final "
                                "answer. Recursive resolution is when each server returns a referral to the next "
                                "server.")
    assert not _stated(result) & {"in recursive resolution the resolver does all the lookups and returns the final "
                                  "answer", "in iterative resolution each server returns a referral to the next server"}


@pytest.mark.parametrize("answer", [
    "I think recursive means the resolver does all the lookups and returns the final answer, or maybe it's the other "
    "way around, I always mix them up.",
    "Recursive resolution is when each server returns a referral to the next server, or vice versa.",
    "Recursive resolution is when each server returns a referral to the next server, I get them mixed up.",
])
def test_a_sentence_that_takes_back_which_side_does_what_states_nothing(resolution, answer):
    assert not _stated(_grade(resolution, answer))
