"""Signals: what the combiner sees of an answer.

Every signal means the same thing in every subject (similarities, coverage,
overlap, length), so a combiner trained on one corpus carries to others.
A question's reference, key-phrase, misconception and example vectors are
computed once (:class:`PreparedQuestion`) and reused for every answer.
"""

from __future__ import annotations

import math
from itertools import chain
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from grader.encoding.embedder import Embedder, Encoding
from grader.scoring.phrases import (FOUND, KEY_CEIL, KEY_FLOOR, PARTIAL, AloneScale, AnswerSpans, Match, TargetSet,
                                    cause_effect, common_roots, content_stem_set, is_negative, make_targets)
from grader.scoring.detectors import lists_terms
from grader.scoring.exemplars import ExampleModel, fits
from grader.scoring.lexicon import OFFERS_ALTERNATIVES
from grader.scoring.spelling import spelling_vocabulary
from grader.scoring.roles import (ALL_ROLES, ANTONYMS, NO_ROLE, contrast_of, contrast_pairs, entities, text_role,
                                  word_roles)
from grader.rubric import ShortAnswerQuestion
from grader.text import Analysis, analyze, detect_language

FEATURES = (
    "ref_sim",  # cosine to the closest reference answer
    "ref_cover",  # mean strength with which the answer states each reference sentence
    "concept_cover",  # key-phrase credit weighted by points (reference sentences when no key phrases)
    "answer_precision",  # mean over answer sentences of their best similarity to a reference sentence
    "q_sim",  # cosine to the question prompt
    "ref_minus_q",  # how much closer to the reference than to the question
    "misconception",  # strongest misconception stated
    "lex_recall",  # share of reference content stems in the answer
    "lex_precision",  # share of answer content stems found in the reference
    "q_overlap",  # share of answer content stems copied from the question
    "log_len",  # log of the answer's content-word count
    "len_ratio",  # log ratio of answer to reference length
    "token_f1",  # token-level alignment with the closest reference: F1 of each side's best-matching token vectors
    "ex_knn",  # similarity-weighted grade of the nearest graded examples
    "ex_top_sim",  # similarity to the closest top-graded example
    "ex_low_sim",  # similarity to the closest bottom-graded example
    "ex_tok_knn",  # as ex_knn, the nearest examples by token_f1 against each (among those nearest by vector)
    "ex_tok_top",  # token_f1 against the closest top-graded example
    "ex_tok_low",  # token_f1 against the closest bottom-graded example
    "ex_lex",  # grade the wording of the question's graded examples predicts (exemplars.py), as log-odds
    "ex_lex_top",  # log-odds of the top grade by that wording
    "ex_lex_low",  # log-odds of the bottom grade by that wording
    "has_examples",
    "has_reference",
    "ex_weight",  # how much the question's graded examples weigh: n / (n + EXAMPLES_HALF); the combiner's gate
)
# The number of graded examples at which the combiner weighs a question's examples-based model half (see
# combiner.LinearCombiner: its second set of weights is scaled by ex_weight).
EXAMPLES_HALF = 40.0
KNN = 5
# Examples an answer's tokens are aligned with (ex_tok_*): the nearest by sentence vector, and as many of the nearest
# top-graded and bottom-graded ones; this bounds the work per answer whatever the number of examples.
TOKEN_CANDIDATES = 24
TOKEN_CANDIDATES_PER_END = 8
# The signals a question's examples' model reads beside the wording (exemplars.py): what the answer says of the
# model answer and how long it is.
EXAMPLE_SIGNALS = ("ref_sim", "ref_cover", "concept_cover", "answer_precision", "misconception", "lex_recall",
                   "lex_precision", "log_len", "len_ratio")
EXAMPLE_SIGNAL_AT = [FEATURES.index(n) for n in EXAMPLE_SIGNALS]
# The reference sentences an answer is credited with when its model answer offers alternatives: the answer to
# "Name two challenges" over a model answer listing eight, or one justification "of the following" beside the
# result. Measured with whole questions held out, 1, 2 and 3 do about as well (docs/evaluation.md).
ALTERNATIVES_CREDITED = 2
MAX_ALONE = 12  # clauses of an answer encoded on their own, at most
# Where on the concepts' own scale (0: the mean cosine between two concepts' phrasings, 1: between two
# phrasings of one concept) a clause encoded alone starts to state a concept, at strength FOUND: a quarter
# of the way up (the midpoint, 0.5, found fewer paraphrases on the development set: F1 0.74 against 0.78).
ALONE_SHIFT = -0.25
UNSTATED = PARTIAL - 0.01  # the strongest evidence a bare list of terms keeps: below half-stated


@dataclass
class PreparedQuestion:
    """A short-answer question with every vector grading it needs, computed once."""

    question: ShortAnswerQuestion
    language: str
    topic: np.ndarray | None  # unit prompt vector, removed from span/concept vectors
    references: np.ndarray  # (n_ref, dim) reference (or pseudo-reference) vectors
    reference_targets: TargetSet
    reference_stems: frozenset
    reference_words: float
    prompt_vector: np.ndarray | None
    prompt_stems: frozenset
    key_targets: TargetSet
    misconception_targets: TargetSet
    example_vectors: np.ndarray  # (n_ex, dim)
    example_fractions: np.ndarray  # (n_ex,)
    has_reference: bool
    example_model: ExampleModel | None = None  # the examples' wording -> grade
    # The references' and the graded examples' token vectors, for token_f1 and ex_tok_*.
    reference_tokens: TokenBank | None = None
    example_tokens: TokenBank | None = None
    names: tuple[str, ...] = ()  # the entities the question contrasts (roles.py)
    spelling: dict | None = None  # the question's own longer words -> word family, for misspelt answer words
    # The model answer offers alternatives (lexicon.OFFERS_ALTERNATIVES): an answer is credited with the
    # ALTERNATIVES_CREDITED reference sentences it states best, not with all of them.
    alternatives: bool = False
    # The embedder, to encode an answer's clauses on their own when its encoding came without them (encoded
    # before the question was prepared); not sent to grading processes.
    encoder: object = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "encoder": None}

    def residual(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors with the question's topic direction removed, unit length again."""
        if self.topic is None or vectors.size == 0:
            return vectors
        return _unit_rows(vectors - np.outer(vectors @ self.topic, self.topic))


def example_fraction(example, max_points: float, label_fractions: dict[str, float]) -> float | None:
    """An example's grade as a fraction of the question's points, from points or a known label."""
    if example.points is not None:
        return min(1.0, example.points / max_points)
    return label_fractions.get(example.label)


def offered_alternatives(question: ShortAnswerQuestion) -> str | None:
    """The words by which ``question``'s model answer or prompt offers alternatives ("One of the following",
    "Possible reasons:"; :data:`~grader.scoring.lexicon.OFFERS_ALTERNATIVES`), or None: then an answer is credited
    with the :data:`ALTERNATIVES_CREDITED` reference sentences it states best."""
    if not question.reference_answers:
        return None
    found = OFFERS_ALTERNATIVES.search(" ".join([question.prompt, *question.reference_answers]))
    return " ".join(found.group(0).split()) if found else None


def prepare_question(question: ShortAnswerQuestion, embedder: Embedder, language: str,
                     label_fractions: dict[str, float]) -> PreparedQuestion:
    """Encode everything about ``question`` that does not depend on the answer: its texts' sentence vectors in one
    encoder call, and the token vectors of its references and graded examples (for :class:`TokenBank`) in a
    second."""
    language = question.language or language
    sample = " ".join([question.prompt, *question.reference_answers])
    if language == "auto":
        language = detect_language(sample)
    examples = [(ex.answer, example_fraction(ex, question.max_points, label_fractions)) for ex in question.examples]
    examples = [(a, f) for a, f in examples if f is not None and a.strip()]
    references = list(question.reference_answers)
    has_reference = bool(references)
    if not references and examples:
        # No model answer: the instructor's best-graded examples stand in for one.
        top = max(f for _, f in examples)
        references = [a for a, f in examples if f >= top - 1e-9]
    ref_analyses = [analyze(r, language) for r in references]
    ref_sentences = [a.span_text(s, e) for a in ref_analyses for s, e in a.sentences]
    # An instructor's sentence that states a concept is one more phrasing of it; one that does not
    # is a counter-example that can veto a match (see phrases.AnswerSpans._vetoed).
    key_phrasings = [(k.text, *k.alternatives, *(e.text for e in k.examples if e.states))
                     for k in question.key_phrases]
    mis_phrasings = [_with_causes((m.text, *m.alternatives, *(e.text for e in m.examples if e.states)))
                     for m in question.misconceptions]
    counter = [tuple(e.text for e in c.examples if not e.states) for c in (*question.key_phrases,
                                                                            *question.misconceptions)]
    texts = ([question.prompt] if question.prompt.strip() else []) + references + ref_sentences
    texts += [t for p in key_phrasings + mis_phrasings for t in p] + [a for a, _ in examples]
    texts += [t for c in counter for t in c]
    # The reference's clauses: more phrasings of the concepts they state, and who each is about
    # (a concept is true of the entity its closest clause names).
    prompt_analysis = analyze(question.prompt, language)
    names = entities(prompt_analysis)
    ref_clauses = []
    for a in ref_analyses if question.key_phrases else ():
        # a sentence of the model answer that names no side and does not go on from the one before ("Resolvers
        # cache answers ...") is about neither side, and neither are the concepts it states
        roles = word_roles(a, names, across_sentences=False)
        parts = [(i, j) for s, e in a.clauses for i, j in _runs(roles, s, e)]  # a clause may speak of both sides
        ref_clauses += [(a.span_text(s, e), int(roles[s])) for s, e in parts if sum(a.content[s:e]) >= 3]
    texts += [t for t, _ in ref_clauses]
    # A key phrase that states a cause and its effect ("X, so Y") is stated only with both: each half is matched
    # on its own, from every phrasing that splits the same way.
    # So is one that says one thing of each entity ("mitosis serves growth, meiosis makes gametes"): each half is
    # matched on its own, about its own entity.
    split_of = [cause_effect if _halves(p) is not None else _by_entity(names, language) for p in key_phrasings]
    halves = [_halves(p, split) for p, split in zip(key_phrasings, split_of)]
    half_texts = [t for h in halves if h for side in h for t in side]
    texts += half_texts
    vectors = embedder.encode(texts) if texts else np.zeros((0, 1), np.float32)
    token_encodings = embedder.encode_tokens(references + [a for a, _ in examples]) if references or examples else []
    ex_encodings = token_encodings[len(references):]
    row = 0
    prompt_vector = None
    if question.prompt.strip():
        prompt_vector = vectors[0]
        row = 1
    ref_vecs = vectors[row : row + len(references)]
    row += len(references)
    sent_vecs = vectors[row : row + len(ref_sentences)]
    row += len(ref_sentences)
    n_key = sum(len(p) for p in key_phrasings)
    n_mis = sum(len(p) for p in mis_phrasings)
    key_vecs = vectors[row : row + n_key]
    mis_vecs = vectors[row + n_key : row + n_key + n_mis]
    n_ex = len(examples)
    ex_vecs = vectors[row + n_key + n_mis : row + n_key + n_mis + n_ex]
    counter_vecs, at = [], row + n_key + n_mis + n_ex
    for c in counter:
        counter_vecs.append(vectors[at : at + len(c)])
        at += len(c)
    clause_vecs = vectors[at : at + len(ref_clauses)]
    at += len(ref_clauses)
    half_vecs = []
    for h in halves:
        if h is None:
            half_vecs.append(None)
            continue
        cause, effect = h
        half_vecs.append((vectors[at : at + len(cause)], vectors[at + len(cause) : at + len(cause) + len(effect)]))
        at += len(cause) + len(effect)
    prepared = PreparedQuestion(
        question=question,
        language=language,
        topic=prompt_vector,
        references=ref_vecs,
        reference_targets=TargetSet.of(()),
        reference_stems=frozenset().union(*(a.content_stems() for a in ref_analyses)) if ref_analyses else frozenset(),
        reference_words=float(np.mean([len(a.words) for a in ref_analyses])) if ref_analyses else 0.0,
        prompt_vector=prompt_vector,
        prompt_stems=frozenset(prompt_analysis.content_stems()),
        key_targets=TargetSet.of(()),
        misconception_targets=TargetSet.of(()),
        example_vectors=ex_vecs if examples else np.zeros((0, vectors.shape[1]), np.float32),
        example_fractions=np.array([f for _, f in examples], dtype=np.float32),
        has_reference=has_reference,
        names=names,
        alternatives=offered_alternatives(question) is not None,
        encoder=embedder,
        reference_tokens=TokenBank.of(token_encodings[:len(references)]),
    )
    prepared.reference_targets = TargetSet.of(make_targets(
        [f"ref{i}" for i in range(len(ref_sentences))], [(s,) for s in ref_sentences],
        prepared.residual(sent_vecs), language))
    n_kp = len(question.key_phrases)
    key_analyses = [[analyze(t, language) for t in p] for p in key_phrasings]
    mis_analyses = [[analyze(t, language) for t in p] for p in mis_phrasings]
    prepared.spelling = spelling_vocabulary([*ref_analyses, *chain.from_iterable(key_analyses),
                                             *chain.from_iterable(mis_analyses)])
    # Opposites the rubric's own texts draw: the reference's and the key phrases' ("added to rather than overwritten").
    pairs = contrast_pairs(ref_analyses + [a for texts in key_analyses for a in texts]) | ANTONYMS
    named = _named_roles(key_analyses, names) if names else None
    owned = _same_polarity(_clause_owners(key_phrasings, key_vecs, clause_vecs, [r for _, r in ref_clauses],
                                          [min(n) if len(n) == 1 else NO_ROLE for n in named] if names else None),
                           key_analyses, [analyze(t, language) for t, _ in ref_clauses])
    roles = _roles(key_analyses, key_vecs, ref_clauses, clause_vecs, names, owned, named)
    key_phrasings, key_vecs = _with_reference_clauses(key_phrasings, key_vecs, ref_clauses, clause_vecs, owned)
    half_vecs = _sided(halves, half_vecs, key_phrasings, key_vecs, split_of)
    half_roles = [None if h is None or split is cause_effect else tuple(text_role(analyze(side[0], language), names)
                                                                         for side in h)
                  for h, split in zip(halves, split_of)]
    alone = alone_scale(prepared.residual(key_vecs), [len(p) for p in key_phrasings])
    if alone is not None:
        _encode_clauses(embedder, language)
    mis_roles = _roles(mis_analyses, mis_vecs, [], clause_vecs[:0], names)
    common = common_roots(prompt_analysis, key_analyses + mis_analyses,
                          None if roles is None else [*roles, *mis_roles]) | frozenset(names)
    # the words of each kind of target: a word of one phrasing that the other kind uses is not a target's own
    key_words, mis_words = (frozenset().union(*(content_stem_set(a) for texts in kind for a in texts))
                            for kind in (key_analyses, mis_analyses))
    prepared.key_targets = TargetSet.of(make_targets(
        [k.text for k in question.key_phrases], key_phrasings, prepared.residual(key_vecs), language,
        [prepared.residual(v) for v in counter_vecs[:n_kp]], roles,
        [contrast_of(a, pairs) for a in key_analyses],
        [None if h is None else tuple((texts, prepared.residual(v)) for texts, v in h) for h in half_vecs],
        half_roles),
        (KEY_FLOOR, KEY_CEIL), common, alone, _taught(question.key_phrases, language), mis_words)
    # A span closer to a key phrase than to a misconception states the key phrase, not the misconception.
    key_residual = prepared.residual(key_vecs)
    # A misconception too is stated only by a span that asserts one of its own words ("a growing buffer",
    # not "the LSTM's memory"), as a key phrase is. The model answer's words are no misconception's own: a
    # correct answer uses them ("a cell state in addition to the hidden state" of "all past hidden states").
    ref_words = frozenset().union(*(content_stem_set(a) for a in ref_analyses))
    prepared.misconception_targets = TargetSet.of(make_targets(
        [m.text for m in question.misconceptions], mis_phrasings, prepared.residual(mis_vecs), language,
        [np.concatenate([prepared.residual(v), key_residual]) for v in counter_vecs[n_kp:]],
        mis_roles), common=common,
        taught=_taught(question.misconceptions, language), others=key_words | ref_words,
        others_not_own=True, wary=True)
    prepared.example_model = _example_model(prepared, examples, ex_vecs, ex_encodings)
    prepared.example_tokens = TokenBank.of(ex_encodings)  # after the examples' model: it reads no ex_* signal
    return prepared


def _example_model(prepared: PreparedQuestion, examples: list[tuple[str, float]], vectors: np.ndarray,
                   encodings: list[Encoding]) -> ExampleModel | None:
    """The examples' model of a prepared question. With enough examples to fit one and a model answer, it also
    reads each example's :data:`EXAMPLE_SIGNALS` (computed here, as for any answer); without a model answer the
    best examples stand in for it, and their signals against themselves would teach nothing true."""
    texts, fractions = [a for a, _ in examples], [f for _, f in examples]
    signals = None
    if prepared.has_reference and fits(len(texts), fractions):
        signals = np.array([answer_signals(prepared, t, e).example_inputs for t, e in zip(texts, encodings)])
    return ExampleModel.of(texts, fractions, vectors, signals)


def _taught(items, language: str) -> list[frozenset]:
    """Per key phrase or misconception, the word families of an instructor's examples that state it."""
    return [frozenset().union(*(content_stem_set(analyze(e.text, language)) for e in item.examples if e.states))
            for item in items]


def alone_scale(vectors: np.ndarray, widths: list[int]) -> AloneScale | None:
    """Cosines of a clause encoded on its own mapped onto strength 0 and 1, from the concepts' own texts
    (each encoded on its own too): 0 at the mean cosine between phrasings of two concepts, 1 at the mean
    cosine between two phrasings of one concept, moved by ``ALONE_SHIFT``. None with fewer than two concepts
    or no concept of two phrasings."""
    if len(widths) < 2 or max(widths) < 2:
        return None
    owner = np.repeat(np.arange(len(widths)), widths)
    sims = vectors @ vectors.T
    same = owner[:, None] == owner[None, :]
    np.fill_diagonal(same, False)
    within = float(sims[same].mean())
    between = float(sims[owner[:, None] != owner[None, :]].mean())
    if within - between < 0.05:
        return None
    shift = ALONE_SHIFT * (within - between)
    return AloneScale(between + shift, within + shift)


def _with_causes(phrasings: tuple[str, ...]) -> tuple[str, ...]:
    """A misconception's phrasings and the wrong reasons they give: in "LSTMs work because they have more
    parameters" the wrong belief is the reason, which an answer may state without its conclusion."""
    causes = [h[0] for h in map(cause_effect, phrasings) if h is not None and len(h[0].split()) >= 3]
    return tuple(dict.fromkeys((*phrasings, *causes)))


def _halves(phrasings, split=cause_effect) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(causes, effects) of a concept whose main phrasing states a cause and its effect (or what ``split``
    cuts it into), else None."""
    if not phrasings or split(phrasings[0]) is None:
        return None
    parts = [h for h in map(split, phrasings) if h is not None]
    return tuple(dict.fromkeys(c for c, _ in parts)), tuple(dict.fromkeys(e for _, e in parts))


def _by_entity(names: tuple[str, ...], language: str):
    """A splitter of a phrasing that says one thing of each of two entities, in two runs of at least two
    content words ("die Mitose dient dem Wachstum, die Meiose der Bildung von Keimzellen"): (first, second),
    each with its entity first in the order of ``names``' appearance in it; None for any other phrasing."""
    def split(text: str) -> tuple[str, str] | None:
        if len(names) < 2:
            return None
        a = analyze(text, language)
        roles = word_roles(a, names)
        runs = [(s, e) for s, e in _runs(roles, 0, len(roles)) if roles[s] >= 0]
        if len(runs) != 2 or roles[runs[0][0]] == roles[runs[1][0]] or any(sum(a.content[s:e]) < 2 for s, e in runs):
            return None
        return a.span_text(*runs[0]), a.span_text(*runs[1])
    return split


def _sided(halves, half_vectors, phrasings, vectors: np.ndarray, splits=None):
    """((cause texts, vectors), (effect texts, vectors)) of each two-part concept (None for the others).

    A phrasing of the concept that does not split (an alternative, a reference clause) says one
    half in its own words: it joins the half it reads closest to. ``splits``: each concept's splitter
    (:func:`cause_effect` by default).
    """
    out, row = [], 0
    for k, (h, hv, p) in enumerate(zip(halves, half_vectors, phrasings)):
        split = splits[k] if splits is not None else cause_effect
        mine = vectors[row : row + len(p)]
        row += len(p)
        if h is None:
            out.append(None)
            continue
        sides = [list(h[0]), list(h[1])]
        side_vectors = [[hv[0]], [hv[1]]]
        for text, v in zip(p, mine):
            if split(text) is None:
                side = int((hv[1] @ v).max() > (hv[0] @ v).max())
                sides[side].append(text)
                side_vectors[side].append(v[None, :])
        out.append(tuple((tuple(t), np.concatenate(v)) for t, v in zip(sides, side_vectors)))
    return out


ROLE_CLAUSE_SIM = 0.4  # cosine from which a reference clause is close enough to a concept to give it its role
REFERENCE_PHRASING_SIM = 0.55  # cosine from which a reference clause is one more phrasing of its closest concept


def _clause_owners(phrasings, vectors: np.ndarray, clause_vectors: np.ndarray, clause_roles=None,
                   concept_roles=None) -> list[np.ndarray]:
    """The reference clauses (indices) that state each concept: those closest to it (cosine to its
    phrasings), when close enough. A clause about one entity (``clause_roles``) states no concept whose
    phrasings name another (``concept_roles``): "a competitive inhibitor binds to the active site" is no
    phrasing of "a non-competitive inhibitor binds elsewhere", however close it reads."""
    if not len(clause_vectors) or not phrasings:
        return [np.zeros(0, dtype=np.int64) for _ in phrasings]
    widths = [len(p) for p in phrasings]
    starts = np.cumsum([0, *widths[:-1]])
    sims = np.maximum.reduceat(clause_vectors @ vectors.T, starts, axis=1)  # clause x concept
    if clause_roles is not None and concept_roles is not None:
        c, k = np.asarray(clause_roles)[:, None], np.asarray(concept_roles)[None, :]
        sims = np.where((c >= 0) & (k >= 0) & (c != k), -1.0, sims)
    owner = sims.argmax(axis=1)
    close = sims.max(axis=1) >= REFERENCE_PHRASING_SIM
    return [np.flatnonzero(close & (owner == k)) for k in range(len(phrasings))]


def _same_polarity(owned: list[np.ndarray], key_analyses, clause_analyses) -> list[np.ndarray]:
    """``owned`` (:func:`_clause_owners`) less the reference clauses whose polarity no phrasing of their concept
    shares: "because the price is not allowed to rise" says that something is not so, which no phrasing of "at
    the lower price consumers want to buy more" does, so it is no phrasing of that concept."""
    negative = [is_negative(a) for a in clause_analyses]
    out = []
    for mine, texts in zip(owned, key_analyses):
        polarities = {is_negative(a) for a in texts}
        out.append(np.array([i for i in mine if negative[i] in polarities], dtype=np.int64))
    return out


def _with_reference_clauses(phrasings, vectors: np.ndarray, clauses, clause_vectors: np.ndarray, owned):
    """Key phrasings and their flat vectors, each concept given the reference clauses that state it
    (``owned``, :func:`_clause_owners`): the model answer's own words for it, matched like the
    instructor's alternatives.
    """
    if not len(clauses) or not phrasings:
        return phrasings, vectors
    widths = [len(p) for p in phrasings]
    starts = np.cumsum([0, *widths[:-1]])
    out_phrasings, out_vectors = [], []
    for k, (p, start) in enumerate(zip(phrasings, starts)):
        mine = owned[k]
        out_phrasings.append((*p, *(clauses[i][0] for i in mine)))
        out_vectors += [vectors[start : start + len(p)], clause_vectors[mine]]
    return out_phrasings, np.concatenate(out_vectors)


def _runs(roles: np.ndarray, start: int, end: int) -> list[tuple[int, int]]:
    """The [start, end) word ranges within [start, end) over which ``roles`` stays the same."""
    cuts = [start, *(i for i in range(start + 1, end) if roles[i] != roles[i - 1]), end]
    return list(zip(cuts[:-1], cuts[1:]))


def _named_roles(analyses, names) -> list[set[int]]:
    """Per concept (its analysed phrasings), the entities its phrasings name (:func:`text_role`; ``ALL_ROLES``
    for one that names several)."""
    return [{text_role(a, names) for a in phrasings} - {NO_ROLE} for phrasings in analyses]


def _roles(analyses, vectors: np.ndarray, clauses, clause_vectors: np.ndarray, names,
           owned=None, named=None) -> list[int] | None:
    """The role of each concept (phrasings ``analyses``, their ``vectors`` flat): none where a phrasing
    names several entities, the entity its phrasings name, else the one entity of the reference clauses
    that state it (``owned``), else
    the entity of the closest reference clause (``clauses``: (text, role)), else none. None when
    the question contrasts no entities. ``named``: :func:`_named_roles` of ``analyses``, when worked out."""
    if not names:
        return None
    out, row = [], 0
    for phrasings, said in zip(analyses, named if named is not None else _named_roles(analyses, names)):
        n = len(phrasings)
        said = set(said)  # a copy: one entity is popped from it
        role = NO_ROLE
        if ALL_ROLES in said:  # "mitosis serves growth, meiosis makes gametes" is about both: no one role
            out.append(role)
            row += n
            continue
        stating = {clauses[i][1] for i in owned[len(out)]} if owned is not None else set()
        if len(said) == 1:
            role = said.pop()
        elif not said and len(stating) == 1 and min(stating) >= 0:
            role = stating.pop()
        elif not said and len(clauses):
            sims = vectors[row : row + n] @ clause_vectors.T
            best = int(sims.max(axis=0).argmax())
            if sims.max() >= ROLE_CLAUSE_SIM and clauses[best][1] >= 0:
                role = clauses[best][1]
        out.append(role)
        row += n
    return out


@dataclass
class AnswerSignals:
    """Everything computed about one answer: the feature vector and the matches behind it."""

    features: np.ndarray
    key_matches: list[Match]
    misconception_matches: list[Match]
    analysis: Analysis
    example_inputs: np.ndarray  # the EXAMPLE_SIGNALS an examples' model reads (all of the model answer's coverage)


def clause_splitter(languages) -> Callable[[str], list[tuple[int, int]]]:
    """Text -> character spans of its clauses of two content words or more (at most ``MAX_ALONE`` per
    language), as :func:`~grader.text.analyze` cuts them in each of ``languages``: what an embedder's
    ``splitter`` encodes on its own, for :func:`answer_signals` to match key phrases on."""
    languages = tuple(sorted(languages))

    def split(text: str) -> list[tuple[int, int]]:
        spans: dict[tuple[int, int], None] = {}
        for language in languages:
            analysis = analyze(text, language)
            words = analysis.words
            clauses = [c for c in analysis.clauses if sum(analysis.content[c[0] : c[1]]) >= 2][:MAX_ALONE]
            # A clause that is the whole text is encoded already: the text's own vector.
            spans.update(((words[s].start, words[e - 1].end), None) for s, e in clauses if e - s < len(words))
        return list(spans)

    split.languages = frozenset(languages)
    return split


def _encode_clauses(embedder: Embedder, language: str) -> None:
    """Have ``embedder`` encode the clauses of the answers it encodes on their own, in ``language`` too (once a
    question with key phrases is prepared; embedders without a ``splitter`` keep encoding answers alone)."""
    target = embedder if hasattr(embedder, "splitter") else getattr(embedder, "inner", None)
    if target is None or not hasattr(target, "splitter"):
        return
    languages = getattr(target.splitter, "languages", frozenset())
    if language not in languages:
        target.splitter = clause_splitter(languages | {language})


def key_credit(match: Match) -> float:
    """Share of a key phrase's points an answer earns: full when found, half when half-stated."""
    if match.strength >= FOUND:
        return 1.0
    if match.strength >= PARTIAL:
        return 0.5
    return 0.0


def _alone_clauses(prepared: PreparedQuestion, analysis: Analysis, encoding: Encoding):
    """(word ranges, unit vectors) of the answer's clauses encoded on their own, or None: for questions whose
    key phrases have a scale for them (:func:`alone_scale`). They come with the encoding from an embedder
    with a ``splitter``; an answer encoded before its question was prepared has them encoded here."""
    if prepared.key_targets.alone is None:
        return None
    words = analysis.words
    if not words:
        return None
    parts, part_spans = encoding.parts, encoding.part_spans
    if parts is None:
        if prepared.encoder is None:
            return None
        part_spans = clause_splitter((prepared.language,))(analysis.text)
        parts = prepared.encoder.encode([analysis.text[a:b] for a, b in part_spans]) if part_spans else None
    at = {(words[s].start, words[e - 1].end): (s, e) for s, e in analysis.clauses}
    found = [(at[tuple(span)], k) for k, span in enumerate(part_spans) if tuple(span) in at]
    ranges = [r for r, _ in found]
    vectors = [parts[[k for _, k in found]]] if found else []
    if (0, len(words)) in analysis.clauses and sum(analysis.content) >= 2:  # one clause: the answer's own vector
        ranges.append((0, len(words)))
        vectors.append(encoding.vector[None, :])
    if not ranges:
        return None
    return ranges, np.concatenate(vectors)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` with each non-zero row scaled to unit length, as float32."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


@dataclass(frozen=True)
class TokenBank:
    """Texts' unit token vectors (the encoder's, special tokens removed) in one matrix, to align an answer's
    tokens with each text's as BERTScore does (:meth:`f1`). Kept in float16: they count in the prepared-question
    cache's byte bound, and a question's graded examples may be many."""

    rows: np.ndarray  # (total tokens, dim), float16
    starts: np.ndarray  # (n_texts,) each text's first row
    lengths: np.ndarray  # (n_texts,) its number of rows (a text without tokens has one zero row)

    @classmethod
    def of(cls, encodings: Sequence[Encoding]) -> TokenBank | None:
        if not encodings:
            return None
        rows = [_unit_rows(e.tokens) if len(e.tokens) else np.zeros((1, e.vector.shape[-1]), np.float32)
                for e in encodings]
        lengths = np.array([len(r) for r in rows])
        return cls(np.concatenate(rows).astype(np.float16), _starts(lengths), lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def f1(self, tokens: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        """For each text (of ``which``, indices, else all): precision, the mean over the answer's tokens of each
        one's best cosine to a token of the text; recall, the same over the text's tokens; their harmonic mean.
        Contextual token vectors credit content restated in other words, and a short answer that says one true
        thing earns high precision but low recall."""
        n = len(self) if which is None else len(which)
        if len(tokens) == 0 or n == 0:
            return np.zeros(n)
        if which is None:  # every text: the rows as they are
            rows, lengths, starts = self.rows, self.lengths, self.starts
        else:
            which = np.asarray(which, dtype=np.intp)
            lengths = self.lengths[which]
            at = np.concatenate([np.arange(a, a + k) for a, k in zip(self.starts[which], lengths)])
            rows, starts = self.rows[at], _starts(lengths)
        sims = _unit_rows(tokens) @ rows.astype(np.float32, copy=False).T  # (answer tokens, the texts' tokens)
        precision = np.maximum.reduceat(sims, starts, axis=1).mean(axis=0)
        recall = np.add.reduceat(sims.max(axis=0), starts) / lengths
        total = precision + recall
        return np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)


def _starts(lengths: np.ndarray) -> np.ndarray:
    """The first row of each of consecutive blocks of ``lengths`` rows."""
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)


def token_f1(references: TokenBank | None, tokens: np.ndarray) -> float:
    """How closely the answer's token vectors align with the closest reference's: the highest
    :meth:`TokenBank.f1` over the references (0 without any)."""
    if references is None:
        return 0.0
    return float(references.f1(tokens).max(initial=0.0))


def _log_odds(p: float, floor: float = 0.02) -> float:
    """log(p / (1 - p)) with p kept within [floor, 1 - floor]: a linear combiner reads a confident estimate as
    a large value, an uncertain one as near 0."""
    p = min(max(p, floor), 1.0 - floor)
    return math.log(p / (1.0 - p))


def answer_signals(prepared: PreparedQuestion, answer: str, encoding: Encoding,
                   exclude_example: int | None = None) -> AnswerSignals:
    """Compute the feature vector of one answer (``FEATURES`` order)."""
    analysis = analyze(answer, prepared.language)
    spans = AnswerSpans(analysis, encoding, prepared.topic, prepared.names,
                        _alone_clauses(prepared, analysis, encoding), prepared.spelling)
    vec = encoding.vector
    q = prepared.question

    ref_sim = float((prepared.references @ vec).max()) if len(prepared.references) else 0.0
    # Span-by-reference-sentence similarities serve both coverage and precision.
    ref_sims = spans.similarities(prepared.reference_targets.matrix) if prepared.reference_targets else None
    ref_strengths = spans.strengths(prepared.reference_targets, ref_sims)
    # Coverage of all reference sentences, and of those credited: the best ones when the model answer offers
    # alternatives, else all.
    credited = sorted(ref_strengths, reverse=True)[:ALTERNATIVES_CREDITED] if prepared.alternatives else None
    ref_cover_all = _mean(ref_strengths)
    ref_cover = ref_cover_all if credited is None else _mean(credited)
    mis_sims = spans.similarities(prepared.misconception_targets.matrix) if prepared.misconception_targets else None
    mis_matches = spans.match_all(prepared.misconception_targets, mis_sims)
    key_sims = spans.similarities(prepared.key_targets.matrix) if prepared.key_targets else None
    alone = prepared.key_targets.alone
    # a clause that states a misconception states no key phrase
    spans.silence(mis_matches, prepared.misconception_targets, mis_sims, key_sims, alone.ceil if alone else None)
    key_matches = spans.match_all(prepared.key_targets, key_sims)
    if key_matches and lists_terms(answer, analysis, q):
        # A bare list of terms names the concepts without stating anything about them.
        key_matches = [m._replace(strength=min(m.strength, UNSTATED)) for m in key_matches]
    if key_matches:
        total = sum(k.points for k in q.key_phrases)
        concept_cover = concept_cover_all = sum(k.points * key_credit(m)
                                                for k, m in zip(q.key_phrases, key_matches)) / total
    else:
        concept_cover_all = _mean([s >= FOUND for s in ref_strengths])
        concept_cover = concept_cover_all if credited is None else _mean([s >= FOUND for s in credited])
    misconception = max((m.strength for m in mis_matches), default=0.0)

    precision = 0.0
    if ref_sims is not None and analysis.sentences:
        sentences = set(analysis.sentences)
        sentence_rows = [i for i, r in enumerate(spans.ranges[: spans.n_pooled]) if r in sentences]
        if sentence_rows:
            # The float32 arithmetic of np.mean, without its wrapper's cost.
            precision = float(ref_sims[sentence_rows].max(axis=1).sum() / len(sentence_rows))
    q_sim = float(prepared.prompt_vector @ vec) if prepared.prompt_vector is not None else 0.0

    stems = analysis.content_stems()
    n_stems = max(1, len(stems))
    lex_recall = len(stems & prepared.reference_stems) / max(1, len(prepared.reference_stems))
    lex_precision = len(stems & prepared.reference_stems) / n_stems if prepared.reference_stems else 0.0
    q_overlap = len(stems & prepared.prompt_stems) / n_stems if prepared.prompt_stems else 0.0
    n_words = len(analysis.words)
    log_len = math.log1p(len(stems))
    len_ratio = math.log((n_words + 1) / (prepared.reference_words + 1)) if prepared.reference_words else 0.0

    own = np.array([ref_sim, ref_cover, concept_cover, precision, q_sim, ref_sim - q_sim, misconception,
                    lex_recall, lex_precision, q_overlap, log_len, len_ratio,
                    token_f1(prepared.reference_tokens, encoding.tokens)], dtype=np.float64)  # FEATURES[:13]
    # A question's graded examples show how much of the model answer its grades ask for, so the examples' model
    # reads the coverage of every reference sentence, alternatives or not.
    example_inputs = own[EXAMPLE_SIGNAL_AT]
    example_inputs[[EXAMPLE_SIGNALS.index("ref_cover"), EXAMPLE_SIGNALS.index("concept_cover")]] = \
        ref_cover_all, concept_cover_all
    examples = _example_signals(prepared, answer, vec, encoding.tokens, exclude_example, example_inputs)
    n_examples = len(prepared.example_fractions) - (exclude_example is not None)
    weight = n_examples / (n_examples + EXAMPLES_HALF)
    features = np.concatenate([own, examples, [float(prepared.has_reference), weight]])
    return AnswerSignals(features, key_matches, mis_matches, analysis, example_inputs)


def _mean(values) -> float:
    return float(sum(values) / len(values)) if len(values) else 0.0


def _example_signals(prepared: PreparedQuestion, answer: str, vec: np.ndarray, tokens: np.ndarray,
                     exclude_example: int | None, own: np.ndarray) -> list[float]:
    """ex_knn ... has_examples (:data:`FEATURES` order): what the question's graded examples say of the answer;
    ``own``: its :data:`EXAMPLE_SIGNALS`, for an examples' model that reads them."""
    ex_knn = ex_top = ex_low = ex_lex = ex_lex_top = ex_lex_low = 0.0
    tok_knn = tok_top = tok_low = 0.0
    has_examples = 0.0
    if len(prepared.example_fractions):
        sims = prepared.example_vectors @ vec
        fractions = prepared.example_fractions
        index = np.arange(len(sims))
        if exclude_example is not None:
            keep = index != exclude_example
            sims, fractions, index = sims[keep], fractions[keep], index[keep]
        if len(sims):
            has_examples = 1.0
            top, low = fractions.max(), fractions.min()
            is_top, is_low = fractions >= top - 1e-9, fractions <= low + 1e-9
            ex_knn = _nearest_grade(sims, fractions)
            ex_top = float(sims[is_top].max())
            ex_low = float(sims[is_low].max()) if low < top else 0.0
            if prepared.example_tokens is not None:
                order = np.argsort(-sims, kind="stable")
                near = np.unique(np.concatenate([order[:TOKEN_CANDIDATES],
                                                 order[is_top[order]][:TOKEN_CANDIDATES_PER_END],
                                                 order[is_low[order]][:TOKEN_CANDIDATES_PER_END]]))
                aligned = prepared.example_tokens.f1(tokens, index[near])
                tok_knn = _nearest_grade(aligned, fractions[near])
                tok_top = float(aligned[is_top[near]].max())
                tok_low = float(aligned[is_low[near]].max()) if low < top else 0.0
            if prepared.example_model is not None:
                predicted = prepared.example_model.predict(answer, vec, exclude_example, own)
                ex_lex, ex_lex_top, ex_lex_low = map(_log_odds, predicted)
    return [ex_knn, ex_top, ex_low, tok_knn, tok_top, tok_low, ex_lex, ex_lex_top, ex_lex_low, has_examples]


def _nearest_grade(sims: np.ndarray, fractions: np.ndarray) -> float:
    """The grade of the :data:`KNN` most similar examples, each weighed by how close it comes to the closest."""
    order = np.argsort(-sims, kind="stable")[:KNN]
    weights = np.exp((sims[order] - sims[order].max()) * 20.0)
    return float(np.dot(weights, fractions[order]) / weights.sum())
