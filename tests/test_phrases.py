"""Text analysis and concept matching: negation scopes, lexical and semantic matches, evidence spans."""

from __future__ import annotations

import pytest

from grader.scoring.phrases import AnswerSpans, make_targets
from grader.text import analyze, detect_language


def _negated_words(text):
    a = analyze(text)
    return [w.text for w, n in zip(a.words, a.negated) if n]


@pytest.mark.parametrize("text, negated", [
    ("The LSTM does not update its state additively.", ["update", "its", "state", "additively"]),
    ("It is updated additively rather than multiplicatively.", ["multiplicatively"]),
    ("There is no attention, but gates help.", ["attention"]),
    ("Gates help the gradient flow.", []),
    # the reason given for what is denied is asserted ...
    ("The gradient does not vanish because the cell state adds.", ["vanish"]),
    # ... but a cause after "because of" / "due to", and the reason of "not because", is what is denied
    ("TCP doesn't slow down because of the receiver's CPU load.", ["slow", "down", "because", "of", "the",
                                                                   "receiver's", "CPU", "load"]),
    ("LSTMs work, not because they have more parameters.", ["because", "they", "have", "more", "parameters"]),
    ("It does not learn because it has more weights, but because of its cell.",
     ["learn", "because", "it", "has", "more", "weights"]),
    # "to nothing" is an amount: what follows is asserted
    ("The error fades to nothing or blows up.", []),
    ("Nothing is kept.", ["is", "kept"]),
    # a whole claim denied, or reported as someone else's view, is no claim of the answer
    ("It is not that animals change because they need to.", ["that", "animals", "change", "because", "they",
                                                              "need", "to"]),
    ("It's not that hard.", ["that", "hard"]),
    ("People sometimes think a hash table keeps its keys sorted, but it doesn't.",
     ["a", "hash", "table", "keeps", "its", "keys", "sorted"]),
    ("A common misconception is that LSTMs use attention. They add.", ["LSTMs", "use", "attention"]),
    ("I think the LSTM adds.", []),
])
def test_negation_scopes(text, negated):
    assert _negated_words(text) == negated


@pytest.mark.parametrize("text, denied", [
    # past the five negated words, to the clause's end ...
    ("They don't keep a list of all their past hidden states either, there's one vector.",
     ["keep", "a", "list", "of", "all", "their", "past", "hidden", "states", "either"]),
    # ... but not past a bracket, a word that opens a clause of its own, or a reason
    ("It has more weights (four matrices instead of one) which gives it capacity.", ["one"]),
    ("It does not vanish over many steps back in time and it keeps going.",
     ["vanish", "over", "many", "steps", "back", "in", "time"]),
    ("The gradient does not vanish because the cell state adds.", ["vanish"]),
    ("They don't keep a list of all their past states because it is expensive.",
     ["keep", "a", "list", "of", "all", "their", "past", "states"]),
    # "without" denies the thing it names, not what the clause goes on to say
    ("It happens without oxygen and makes lactic acid.", ["oxygen"]),
    ("Viruses lack these structures and replicate inside the host's cells.", ["these", "structures"]),
    ("UDP has no retransmission or flow control.", ["retransmission", "or", "flow", "control"]),
])
def test_what_a_denial_may_cover(text, denied):
    a = analyze(text)
    assert [w.text for w, d in zip(a.words, a.denied) if d] == denied


def test_a_joining_word_opens_the_clause_after_it():
    a = analyze("The RNN multiplies, but the LSTM adds. But the gate is open.")
    assert [a.span_text(s, e) for s, e in a.clauses] == ["The RNN multiplies", "but the LSTM adds",
                                                        "But the gate is open"]


def test_a_line_break_ends_a_sentence():
    # terse notes put one statement on each line, without a full stop
    a = analyze("by value -> fn gets a copy of the arg\nby ref -> fn gets an alias of the original var")
    assert [a.span_text(s, e) for s, e in a.sentences] == ["by value -> fn gets a copy of the arg",
                                                          "by ref -> fn gets an alias of the original var"]


def test_sentences_and_offsets():
    text = "First one. Second, with a clause!\n- bullet item"
    a = analyze(text)
    assert [a.span_text(s, e) for s, e in a.sentences] == ["First one", "Second, with a clause", "bullet item"]
    assert all(text[w.start:w.end] == w.text for w in a.words)


@pytest.mark.parametrize("text, language", [
    ("The cell state is updated by the gates and it keeps the gradient.", "en"),
    ("Die Zelle wird durch die Gates aktualisiert und das ist gut für den Gradienten.", "de"),
])
def test_detect_language(text, language):
    assert detect_language(text) == language


@pytest.fixture(scope="module")
def target(embedder):
    phrasings = [("additive updates with gating", "gated additive update")]
    return make_targets(["additive"], phrasings, embedder.encode(phrasings[0]), "en")[0]


def _match(embedder, target, answer):
    return AnswerSpans(analyze(answer), embedder.encode_tokens([answer])[0]).match(target)


def test_lexical_match_with_evidence(embedder, target):
    answer = "Plain RNNs struggle. The LSTM update is additive and gated, so gradients survive."
    m = _match(embedder, target, answer)
    assert m.found and m.strength == 1.0 and m.method == "lexical"
    # the evidence is the clause that states it, not its sentence
    assert answer[m.start:m.end] == m.evidence == "The LSTM update is additive and gated"


def test_negated_statement_does_not_count(embedder, target):
    m = _match(embedder, target, "The LSTM does not use additive updates with gating.")
    assert not m.found and m.negated


def test_unrelated_text_does_not_match(embedder, target):
    assert _match(embedder, target, "Paris is the capital of France and has many museums.").strength < 0.3


def test_long_answers_are_encoded_in_windows(embedder):
    text = "word " * 700 + "additive updates with gating"
    enc = embedder.encode_tokens([text])[0]
    assert len(enc.tokens) == len(enc.offsets) >= 700
    assert enc.offsets[-1][1] == len(text)  # the words past the encoder's window still have vectors


@pytest.mark.parametrize("text", [
    "It is not true that the LSTM updates its cell state additively through gates and keeps the gradient.",
    "It is false that the cell state is updated additively, with gates deciding what to keep.",
])
def test_sentence_level_negation_covers_the_whole_sentence(grader, text):
    result = grader.grade("q5", text)
    found = {c.concept for c in result.concepts if c.found}
    assert "a separate cell state that is updated additively" not in found
    assert "additive updates with gating" not in found


@pytest.mark.parametrize("words", [12, 300])  # token-mask products, and prefix sums past _MASK_TOKENS tokens
def test_span_similarities_equal_those_of_explicit_topic_free_span_vectors(monkeypatch, embedder, words):
    import numpy as np

    from grader.scoring import phrases

    answer = " ".join(["The forget gate keeps the cell state, so gradients flow back additively."] * (words // 12))
    encoding = embedder.encode_tokens([answer])[0]
    topic = embedder.encode(["Why do LSTMs avoid vanishing gradients?"])[0]
    targets = embedder.encode(["additive updates with gating", "the gradient vanishes"])
    targets = targets - np.outer(targets @ topic, topic)
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    analysis = analyze(answer)
    spans = AnswerSpans(analysis, encoding, topic)
    assert (len(encoding.tokens) > phrases._MASK_TOKENS) == (words > 12)
    # Each span by hand: mean of its tokens' vectors, topic removed, unit length.
    expected = []
    for s, e in spans.ranges:
        start, end = analysis.words[s].start, analysis.words[e - 1].end
        inside = [k for k, (a, b) in enumerate(encoding.offsets) if b > start and a < end]
        v = encoding.tokens[inside].sum(axis=0)
        v = v - (v @ topic) * topic
        expected.append(v / np.linalg.norm(v))
    expected = np.array(expected)
    np.testing.assert_allclose(spans.vectors, expected, atol=1e-5)
    np.testing.assert_allclose(spans.similarities(targets), expected @ targets.T, atol=1e-5)
    monkeypatch.setattr(phrases, "_MASK_TOKENS", 10_000 if words > 12 else 0)  # the other path, same numbers
    np.testing.assert_allclose(AnswerSpans(analysis, encoding, topic).similarities(targets),
                               spans.similarities(targets), atol=1e-5)


@pytest.mark.parametrize("answer, stated", [
    ("The LSTM update is additive and gated, so gradients survive.", True),  # lexical
    ("Gates decide what the cell keeps; updates are added, not multiplied.", True),  # semantic
    ("Paris is the capital of France.", True),  # the third target
    ("The LSTM does not use additive updates with gating.", False),  # negated: strength 0
    ("Of the.", False),  # no content word: no span at all
])
def test_strengths_are_those_of_the_full_matches(embedder, answer, stated):
    """Reference sentences are only counted: their strengths skip the Match objects but must agree with them."""
    from grader.scoring.phrases import TargetSet

    phrasings = [("additive updates with gating", "gated additive update"), ("multiplicative recurrence",),
                 ("the capital of France",)]
    vectors = embedder.encode([t for p in phrasings for t in p])
    targets = TargetSet.of(make_targets(["additive", "multiplicative", "paris"], phrasings, vectors, "en"))
    spans = AnswerSpans(analyze(answer), embedder.encode_tokens([answer])[0])
    expected = [m.strength for m in spans.match_all(targets)]
    assert spans.strengths(targets) == expected
    assert spans.strengths(targets, spans.similarities(targets.matrix)) == expected
    assert any(s > 0 for s in expected) == stated


def _windows_by_hand(analysis):
    """Clauses, sentences and 3-, 5- and 8-word windows inside sentences, stepped so that at most
    MAX_SPANS are made, keeping those with two content words (or all words, when shorter)."""
    from grader.scoring import phrases

    n = len(analysis.words)
    ranges = set(analysis.clauses) | set(analysis.sentences)
    stride = max(1, (n * len(phrases.WINDOW_SIZES)) // max(1, phrases.MAX_SPANS - len(ranges)))
    for s, e in analysis.sentences:
        for size in phrases.WINDOW_SIZES:
            start = s
            while size < e - s and start + size <= e:
                ranges.add((start, start + size))
                start += stride
    return [(s, e) for s, e in sorted(ranges) if sum(analysis.content[s:e]) >= min(2, e - s)]


@pytest.mark.parametrize("text", [
    "Gates help.",
    "The forget gate keeps the cell state, but the input gate adds to it. Gradients then flow back!",
    " ".join(["The forget gate keeps the cell state, so gradients flow back additively."] * 30),  # stride > 1
])
def test_spans_are_clauses_sentences_and_windows_with_content_words(embedder, text):
    from grader.text import STOPWORDS

    analysis = analyze(text)
    assert analysis.content == tuple(w.norm not in STOPWORDS["en"] and len(w.norm) > 1 for w in analysis.words)
    spans = AnswerSpans(analysis, embedder.encode_tokens([text])[0])
    assert spans.ranges == _windows_by_hand(analysis)
    assert spans.span_content.tolist() == [sum(analysis.content[s:e]) for s, e in spans.ranges]


def _q5(grader, answer):
    result = grader.grade("q5", answer)
    return {c.concept: c for c in result.concepts}, result


def test_a_claim_whose_subject_is_asserted_and_predicate_denied_is_negated(grader):
    # most of the sentence's words ("the vanilla RNN's recurrence") are asserted; the concept's word is denied
    concepts, _ = _q5(grader, "The vanilla RNN's recurrence is not multiplicative.")
    assert not concepts["multiplicative recurrence"].found and concepts["multiplicative recurrence"].negated
    concepts, _ = _q5(grader, "The vanilla RNN's recurrence is multiplicative.")
    assert concepts["multiplicative recurrence"].found


def test_an_either_or_hedge_states_neither(grader):
    concepts, _ = _q5(grader, "I think in the LSTM the cell state is updated by addition, or maybe multiplication, "
                              "I don't remember which.")
    assert not concepts["a separate cell state that is updated additively"].found



def test_a_negative_reference_clause_is_no_phrasing_of_a_positive_concept(embedder):
    """The model answer's "because the price is not allowed to rise" was taken as one more phrasing of "at the
    lower price consumers want to buy more": a denial read close to it, or an unrelated clause, stated it."""
    from pathlib import Path

    from grader.engine import Grader
    from grader.rubric import load_rubric

    rubric = load_rubric(Path(__file__).parent.parent / "eval" / "probes" / "price_ceiling" / "rubric.yaml")
    grader = Grader(rubric, embedder=embedder)
    answers = ["A lower price doesn't make consumers want to buy any more of it.",
               "Because the government is interfering with the free market. The price can't go where it should.",
               "At the lower price consumers want to buy more of the good."]
    denied, unrelated, stated = (r.concepts[0] for r in grader.grade_many([("price_ceiling", a) for a in answers]))
    assert not denied.found and not unrelated.found
    assert stated.found


def _probe(embedder, name):
    from pathlib import Path

    from grader.engine import Grader
    from grader.rubric import load_rubric

    rubric = load_rubric(Path(__file__).parent.parent / "eval" / "probes" / name / "rubric.yaml")
    return Grader(rubric, embedder=embedder), rubric.questions[0].id


def test_the_clause_of_an_either_or_hedge_states_neither(grader):
    concepts, _ = _q5(grader, "I think the LSTM cell state is updated either by addition or maybe by multiplication "
                              "with the gates, I dont remember which one.")
    assert not concepts["a separate cell state that is updated additively"].found
    assert not concepts["additive updates with gating"].found


def test_an_entity_named_as_a_reference_point_is_not_the_subject(grader):
    concepts, _ = _q5(grader, "The LSTM fixes this with its cell state, and the key thing is that the cell state gets "
                              "stuff added onto it instead of being pushed through a matrix multiply like in the RNN.")
    assert concepts["a separate cell state that is updated additively"].found


def test_a_misconception_needs_a_word_the_model_answer_does_not_use(grader):
    _, result = _q5(grader, "LSTMs have a cell state in addition to the hidden state, and the cell state is updated by "
                            "adding new information to it.")
    assert not result.misconceptions
    _, result = _q5(grader, "An LSTM stores all of its previous hidden states in a memory buffer that grows with the "
                            "sequence.")
    assert result.misconceptions


def test_a_sentence_that_denies_the_rest_of_a_misconception_does_not_state_it(embedder):
    grader, qid = _probe(embedder, "tcp_congestion")
    denied, stated = grader.grade_many([(qid, "The receiver's advertised window only protects the receiver's buffer; "
                                              "it is not what slows the sender down when the network is congested."),
                                        (qid, "When the network is congested it is the receiver that slows the sender "
                                              "down, by shrinking its advertised window.")])
    assert not denied.misconceptions
    assert stated.misconceptions


def test_a_long_with_phrase_picks_out_a_subject_it_does_not_require(embedder):
    grader, qid = _probe(embedder, "natural_selection")
    result = grader.grade(qid, "The animals that are best adapted to their environment survive and reproduce more.")
    concept = next(c for c in result.concepts if c.concept.startswith("individuals with advantageous traits"))
    assert concept.found


def test_used_up_is_a_claim_of_its_own(embedder):
    grader, qid = _probe(embedder, "circuits")
    used_up, same = grader.grade_many([(qid, "Each resistor in a series circuit uses up part of the current, so an "
                                             "ammeter after the second resistor reads less than one before it. In "
                                             "parallel each branch has the same voltage."),
                                       (qid, "In series circuit the current is same in all resistor, it not change.")])
    assert used_up.misconceptions
    assert next(c for c in same.concepts if c.concept.startswith("in series the same current")).strength > 0.3


def test_a_number_about_one_entity_is_no_wrong_number_for_another(embedder):
    grader, qid = _probe(embedder, "cell_division")
    result = grader.grade(qid, "Mitosis produces two genetically identical cells. Meiosis produces four cells.")
    found = {c.concept for c in result.concepts if c.found}
    assert "mitosis produces two cells identical to the parent" in found
    assert "meiosis produces four cells" in found
    wrong = grader.grade(qid, "Meiosis produces two cells.")
    assert "meiosis produces four cells" not in {c.concept for c in wrong.concepts if c.found}


def test_stays_the_same_is_unchanged_and_shared_words_say_nothing_of_the_other_side(embedder):
    grader, qid = _probe(embedder, "pass_by")
    result = grader.grade(qid, "Pass by value gives the function its own copy, so if the function changes it, the "
                               "caller's variable stays the same. Pass by reference lets the function use the "
                               "caller's variable directly.")
    concepts = {c.concept: c for c in result.concepts}
    assert concepts["changes to a parameter passed by value do not affect the caller's variable"].found
    # the first sentence, about passing by value, says nothing of the reference concept: no reversal
    assert not concepts["pass by reference gives the function access to the caller's variable itself"].negated


def test_a_concept_that_says_one_thing_of_each_entity_is_read_each_about_its_own(embedder):
    grader, qid = _probe(embedder, "mitose_meiose")
    key = "die Mitose dient dem Wachstum und der Erneuerung, die Meiose der Bildung von Keimzellen"
    right, swapped = grader.grade_many([
        (qid, "Die Mitose ist für Wachstum und Erneuerung von Gewebe da, die Meiose für die Bildung der Keimzellen."),
        (qid, "Mitose bildet die Geschlechtszellen, Meiose ist für das Wachstum und die Erneuerung von Gewebe "
              "zuständig.")])
    assert next(c for c in right.concepts if c.concept == key).found
    assert not next(c for c in swapped.concepts if c.concept == key).found


def test_an_everyday_opposite_reverses_a_concept(embedder):
    grader, qid = _probe(embedder, "interest_rates")
    key = "a higher rate can strengthen the currency, making imports cheaper"
    stated, reversed_ = grader.grade_many([
        (qid, "A higher rate strengthens the currency, so imported goods get cheaper."),
        (qid, "A higher rate weakens the currency, so imported goods get more expensive.")])
    assert next(c for c in stated.concepts if c.concept == key).found
    concept = next(c for c in reversed_.concepts if c.concept == key)
    assert not concept.found and concept.negated


def test_two_numbers_or_both_directions_offered_as_alternatives_state_neither(embedder):
    grader, qid = _probe(embedder, "mitose_meiose")
    result = grader.grade(qid, "Bei der Mitose entstehen entweder zwei oder vier Zellen, ich weiß es nicht mehr.")
    assert not next(c for c in result.concepts if c.concept.startswith("die Mitose erzeugt zwei")).found
    grader, qid = _probe(embedder, "interest_rates")
    result = grader.grade(qid, "When the rate changes, loans get more or less expensive and people borrow more or less.")
    assert not next(c for c in result.concepts if c.concept.startswith("higher interest rates make borrowing")).found


@pytest.mark.parametrize("text", ["A non-competitive inhibitor binds elsewhere.", "non competitive inhibitors",
                                  "Noncompetitive inhibition"])
def test_non_and_its_word_are_one_word_apart_from_the_word_alone(text):
    # "competitive and non-competitive inhibitors" name two sides: "non-competitive" must not say "competitive"
    a = analyze(text)
    assert "noncompetitive" in [w.norm for w in a.words]
    assert "competitive" not in [w.norm for w in a.words]
    assert not any(a.negated)


def test_non_alone_stays_a_word():
    assert [w.norm for w in analyze("non 3, non.").words] == ["non", "3", "non"]
