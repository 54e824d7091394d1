"""Finding concepts (key phrases, misconceptions, reference sentences) in an answer.

A concept is matched two ways and the stronger wins:

* lexically: the share of its content-word stems that one sentence of the answer
  states outside a negation scope;
* semantically: cosine similarity between the concept's vector and the vectors of
  the answer's spans (clauses, sentences and 3-, 5- and 8-word windows), pooled
  from the token vectors of the answer's single forward pass; for key phrases also
  the answer's clauses encoded on their own (in the same encoder call), whose
  cosines read on a scale of their own (:class:`AloneScale`): a paraphrase, a
  notation or a formula loses less of its meaning alone than inside the answer.

A span whose content words sit mostly inside a negation scope ("does not update
its state additively") cannot state the concept.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from itertools import accumulate, chain, repeat
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from grader.encoding.embedder import Encoding
from grader.scoring.roles import (NO_ROLE, REPEATED_ROOT, ROOT, Contrast, families, misnumbered_sentences,
                                  number_of, own_side_spans, particle_families, reversed_sentences, reversed_spans,
                                  root, span_role_counts, unsure_sentences, word_roles)
from grader.scoring.spelling import corrected_family
from grader.text import NEGATION_CUES, Analysis, analyze, stem

WINDOW_SIZES = (3, 5, 8)
MAX_SPANS = 600  # long answers get sparser windows, never unbounded work
# Cosine similarity between a concept and a span, mapped linearly onto strength [0, 1].
SEMANTIC_FLOOR = 0.40
SEMANTIC_CEIL = 0.78
# Key phrases, once spans about the wrong entity, negated or reversed spans are set aside (roles.py),
# are found from a lower cosine: 0.50 on the development set's paraphrases.
KEY_FLOOR = 0.34
KEY_CEIL = 0.66
SPAN_SHARE = 0.6  # a span needs this share of a phrasing's content words to match it at full strength
LEXICAL_POWER = 2.0  # lexical strength is the share of a phrasing's content words asserted, to this power
FOUND = 0.5  # strength from which a concept counts as stated
PARTIAL = 0.3  # strength from which it counts as half-stated
SURE = 0.65  # strength from which a found concept or misconception is asserted rather than uncertain
# Misconception strengths sit on a stricter cosine scale than key phrases', so a misconception is asserted
# from a lower strength than SURE: on the annotated development answers every misconception from 0.55 up was
# right, and asserting them from FOUND cost a quarter of the precision.
MISCONCEPTION_SURE = 0.55
TOPIC_WEIGHT = 0.5  # weight in a word match of a word not the concept's own (a topic word), against 1
# "no", "not", "never": they say which way a phrasing goes, not what it is about; verbs that say little on
# their own ("happens in the roots" is about the roots) neither: never a concept's own words.
NEGATION_ROOTS = frozenset(root(stem(w, lang)) for lang, cues in NEGATION_CUES.items() for w in cues)
LIGHT_ROOTS = frozenset(root(stem(w)) for w in "make take get give go come happen occur use put".split())
TOPIC_CONCEPTS = 3  # a word family in this many of a question's concepts is a topic word, not one concept's


@dataclass(frozen=True)
class Target:
    """A concept prepared once per rubric: its phrasings, their vectors and stems."""

    key: str
    texts: tuple[str, ...]
    vectors: np.ndarray  # (len(texts), dim), unit length
    stems: tuple[frozenset[str], ...]
    counter: np.ndarray | None = None  # unit vectors of sentences an instructor marked as not stating it
    role: int = NO_ROLE  # the entity of the question the concept is true of (roles.py), or NO_ROLE
    contrast: Contrast | None = None  # what reverses it: opposite words, other numbers
    parts: "tuple[Target, Target] | None" = None  # (cause, effect) of a "cause, so effect" concept: both needed
    qualified: tuple[frozenset, frozenset] | None = None  # word families of X and of Y in an "X with Y" concept
    # Per phrasing, whether it says something is not so ("UDP has no congestion control"), and its word families
    # with the denied ones marked "~": None when no phrasing is negative (the common case).
    negative: tuple[bool, ...] | None = None
    signed: tuple[frozenset[str], ...] | None = None


class Match(NamedTuple):
    """How strongly an answer states a concept, and where (a named tuple: cheap to make for every concept)."""

    strength: float
    evidence: str | None
    start: int | None
    end: int | None
    method: str | None  # "semantic" | "lexical" | None
    negated: bool  # the concept is stated, but only in negated form

    @property
    def found(self) -> bool:
        return self.strength >= FOUND


NO_MATCH = Match(0.0, None, None, None, None, False)


class AloneScale(NamedTuple):
    """How clauses encoded on their own state targets: cosines ``floor`` and ``ceil`` map onto strength 0 and 1."""

    floor: float
    ceil: float


@dataclass(frozen=True)
class TargetSet:
    """Targets matched together, with what matching them needs assembled once per rubric.

    ``matrix`` holds every phrasing's vector, target after target; ``starts`` the first
    column of each target; ``needed`` the content words a span needs to state each
    phrasing at full strength; ``complete`` whether every target has a phrasing vector, so
    that one array pass matches them all.
    """

    targets: tuple[Target, ...]
    matrix: np.ndarray
    starts: np.ndarray
    needed: np.ndarray
    complete: bool
    roles: np.ndarray | None = None  # each target's role, None when no target has one
    scale: tuple[float, float] = (SEMANTIC_FLOOR, SEMANTIC_CEIL)  # cosines mapped onto strength 0 and 1
    distinct: tuple[frozenset, ...] | None = None  # each target's word families that the question's others lack
    alone: AloneScale | None = None  # how clauses encoded on their own state the targets; None: they do not
    gate: tuple[frozenset, ...] | None = None  # own words a span must assert, where stricter than ``distinct``
    # A span that negates any word it shares with one of these targets states none of them (misconceptions: a
    # student told they claimed what they denied is worse off than one whose claim goes unremarked).
    wary: bool = False

    @classmethod
    def of(cls, targets, scale: tuple[float, float] = (SEMANTIC_FLOOR, SEMANTIC_CEIL),
           common: frozenset | None = None, alone: AloneScale | None = None, taught=None,
           others: frozenset = frozenset(), others_not_own: bool = False, wary: bool = False) -> "TargetSet":
        """``common``: word families of the question's topic (:func:`common_roots`) and its entities' names;
        given, a span that shares none of a target's own words does not state it: its :func:`_own` words, any
        word of one of its phrasings that no other target and none of ``others`` (the word families of the
        question's other kind of target: misconceptions beside key phrases) has, and those of ``taught`` (per
        target, the word families of an instructor's examples of it). ``others_not_own``: no word of
        ``others`` is one a span must assert (:attr:`gate`) unless the target has no other (misconceptions
        beside the key phrases and the model answer: "in addition to the hidden state" is no statement of "all
        past hidden states in a buffer")."""
        targets = tuple(targets)
        widths = [len(t.vectors) for t in targets]
        dim = next((t.vectors.shape[1] for t in targets if t.vectors.ndim == 2), 0)
        matrix = np.concatenate([t.vectors for t in targets]) if targets else np.zeros((0, dim), np.float32)
        roles = np.array([t.role for t in targets], dtype=np.int64)
        distinct = gate = None
        if common is not None:
            taught = taught or [frozenset()] * len(targets)
            words = [frozenset().union(*t.stems) - common for t in targets]
            # a word that only a concept of the other side shares is still the concept's own: roles tell the
            # sides apart ("overcome" of "more substrate overcomes competitive inhibition" beside "... does not
            # overcome non-competitive inhibition")
            rival = [[j != i and (t.role < 0 or o.role < 0 or t.role == o.role) for j, o in enumerate(targets)]
                     for i, t in enumerate(targets)]
            unique = [w - others - frozenset().union(*(o for j, o in enumerate(words) if rival[i][j]))
                      for i, w in enumerate(words)]
            distinct = tuple((_own(t.stems, common) | u | (extra - common)) - NEGATION_ROOTS - LIGHT_ROOTS
                             for t, u, extra in zip(targets, unique, taught))
            if others_not_own:  # words the other kind of target uses are none a span must assert
                gate = tuple(((_own(t.stems, common | others) | u | (extra - common)) - NEGATION_ROOTS - LIGHT_ROOTS)
                             or own for t, u, extra, own in zip(targets, unique, taught, distinct))
        return cls(targets, matrix, np.cumsum([0, *widths[:-1]]).astype(np.int64),
                   _needed([st for t in targets for st in t.stems]), bool(targets) and min(widths) > 0,
                   roles if (roles != NO_ROLE).any() else None, scale, distinct, alone, gate, wary)

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self):
        return iter(self.targets)


def common_roots(prompt: Analysis, phrasings, roles=None) -> frozenset[str]:
    """Word families of a question's topic: the prompt's, and those of ``TOPIC_CONCEPTS`` or more of its
    concepts (``phrasings``: each concept's analysed texts). With the concepts' ``roles`` (the side each is
    about, or none), those of that many concepts of one side, the concepts of no side counted with each: a
    word of two concepts of each side ("binds" of where each inhibitor binds) is no topic word."""
    by_side: dict[int, Counter] = {}
    for k, texts in enumerate(phrasings):
        role = roles[k] if roles is not None and roles[k] >= 0 else NO_ROLE
        by_side.setdefault(role, Counter()).update(frozenset().union(*(content_stem_set(a) for a in texts)))
    unsided = by_side.pop(NO_ROLE, Counter())
    return content_stem_set(prompt) | {r for side in by_side.values() or [Counter()]
                                       for r, n in (side + unsided).items() if n >= TOPIC_CONCEPTS}


@lru_cache(maxsize=4096)  # a concept's phrasings are fixed; every answer asks
def _core(stems: tuple[frozenset, ...]) -> frozenset[str]:
    """The word families of at least half of a concept's phrasings (``stems``): what it is about, not
    what one phrasing adds ("the hidden state" of "the hidden state is repeatedly multiplied")."""
    stems = [st for st in stems if st]
    counts: dict[str, int] = {}
    for st in stems:
        for f in st:
            counts[f] = counts.get(f, 0) + 1
    return frozenset(f for f, n in counts.items() if 2 * n >= len(stems))


def _own(stems: tuple[frozenset, ...], common: frozenset) -> frozenset[str]:
    """A concept's own word families: its :func:`_core` less the question's ``common`` words, and the words of
    any phrasing that shares none of those (a paraphrase in other words: "UDP does not adapt its sending
    rate" beside "UDP has no congestion control")."""
    core = _core(stems) - common
    out = set(core)
    for st in stems:
        mine = st - common
        if mine and not mine & core:
            out |= mine
    return frozenset(out)


def _needed(stems: list[frozenset]) -> np.ndarray:
    """Content words a span needs to state each phrasing at full strength (a share of the phrasing's)."""
    return np.array([max(1.0, SPAN_SHARE * len(st)) for st in stems])


def content_stem_set(analysis: Analysis) -> frozenset[str]:
    """Word families (:func:`~grader.scoring.roles.root` of the stems) of an analysed text's content words:
    "multiplied" states "multiplicative", "recurrent" states "recurrence". "X rather than Y" states X: Y is
    what it is contrasted with."""
    return frozenset(f for f, c in zip(families(analysis), _kept(analysis)) if c or f == REPEATED_ROOT)


def is_negative(analysis: Analysis) -> bool:
    """Whether a text says something is not so: most of its content words (those
    :func:`content_stem_set` keeps) sit in a negation scope ("UDP has no congestion control")."""
    kept = _kept(analysis)
    content = sum(kept)
    return content > 0 and sum(k and n for k, n in zip(kept, analysis.negated)) >= 0.5 * content


def signed_stem_set(analysis: Analysis) -> frozenset[str]:
    """:func:`content_stem_set` with each denied family marked "~" ("no congestion control": "~congest")."""
    return frozenset(("~" + f if n and f != REPEATED_ROOT else f)
                     for f, k, n in zip(families(analysis), _kept(analysis), analysis.negated)
                     if k or f == REPEATED_ROOT)


def _kept(analysis: Analysis) -> list[bool]:
    """Per word: a content word that is not what an "X rather than Y" contrasts with (Y)."""
    keep = list(analysis.content)
    words, negated = analysis.words, analysis.negated
    for i, w in enumerate(words):
        pair = i + 1 < len(words) and (w.norm, words[i + 1].norm) in _CONTRAST_CUES
        if pair or w.norm in _CONTRAST_ALONE:
            j = i + 2 if pair else i + 1
            while j < len(words) and negated[j]:
                j += 1
            keep[i:j] = [False] * (j - i)
    return keep


_CONTRAST_CUES = frozenset({("rather", "than"), ("instead", "of"), ("as", "opposed")})
_CONTRAST_ALONE = frozenset({"instead", "statt", "anstatt"})


# "X, so Y", "X, therefore Y": X causes Y; "Y because X", "Y since X": the same, the other way round.
_EFFECT_AFTER = re.compile(r"(?:,\s*|\s+)(?:so\s+that|therefore|thus|hence|which\s+causes?|causing|sodass|so\s+dass|"
                           r"daher|deshalb)\s+|,\s*so\s+", re.IGNORECASE)
_CAUSE_AFTER = re.compile(r",?\s+(?:because|since|weil)\s+(?!of\b)", re.IGNORECASE)


def cause_effect(text: str) -> tuple[str, str] | None:
    """(cause, effect) of a phrasing that states a cause and its effect, else None."""
    for pattern, cause_first in ((_EFFECT_AFTER, True), (_CAUSE_AFTER, False)):
        m = pattern.search(text)
        if m and m.start() > 0 and m.end() < len(text):
            before, after = text[: m.start()].strip(" ,;"), text[m.end() :].strip(" ,;.")
            if len(before.split()) >= 2 and len(after.split()) >= 2:
                return (before, after) if cause_first else (after, before)
    return None


# "additive updates with gating", "a cell state under the control of gates": X qualified by Y, both needed.
QUALIFIER_WORDS = 2  # content words of Y at most: "gating", "the control of gates"
_QUALIFIER = re.compile(r"\s+(?:with|under(?:\s+the\s+control\s+of)?|controlled\s+by|mit|unter)\s+", re.IGNORECASE)


def qualified_parts(text: str, language: str) -> tuple[frozenset, frozenset] | None:
    """(families of X, families of Y) of a concept written "X with Y" (or "X under Y", "X controlled by Y"),
    each with content words; else None. The sentence that states it must say both: an additive update
    without gates does not state "additive updates with gating", nor do gates that add parameters. A longer
    Y goes on to say what X does ("individuals with advantageous traits survive and reproduce more"): the
    "with" picks out a subject, which an answer may name in other words ("the best adapted animals")."""
    m = _QUALIFIER.search(text)
    if m is None or m.start() == 0:
        return None
    head, qualifier = (content_stem_set(analyze(t, language)) for t in (text[: m.start()], text[m.end() :]))
    if len(qualifier) > QUALIFIER_WORDS:
        return None
    return (head, qualifier) if head and qualifier and not head & qualifier else None


def make_targets(keys, phrasings, vectors: np.ndarray, language: str, counter=None, roles=None,
                 contrasts=None, parts=None, part_roles=None) -> list[Target]:
    """Targets from parallel lists of keys and phrasing tuples, with their vectors in one flat array.

    ``counter``, ``roles`` and ``contrasts`` (optional, parallel to ``keys``) hold each target's
    counter-example vectors, role and :class:`~grader.scoring.roles.Contrast`; ``parts`` (optional)
    None or ((cause texts, vectors), (effect texts, vectors)) of a target stated by cause and effect (or by
    one thing said of each of two entities: ``part_roles``, optional, holds None or the two parts' roles).
    """
    targets, row = [], 0
    for k, (key, texts) in enumerate(zip(keys, phrasings)):
        n = len(texts)
        role = NO_ROLE if roles is None else int(roles[k])
        contrast = None if contrasts is None or contrasts[k] is None or contrasts[k].empty else contrasts[k]
        halves = None
        if parts is not None and parts[k] is not None:
            # the cause and the effect keep the polarity of their phrasings: "the stream does not wait" is
            # stated by a negated span, as its whole phrasing is
            sides = part_roles[k] if part_roles is not None and part_roles[k] is not None else (role, role)
            halves = tuple(_phrased(f"{key} ({side})", tuple(t), v, language, role=side_role, contrast=contrast)
                           for side, (t, v), side_role in zip(("cause", "effect"), parts[k], sides))
        targets.append(_phrased(key, tuple(texts), vectors[row : row + n], language,
                                counter=counter[k] if counter is not None and len(counter[k]) else None,
                                role=role, contrast=contrast, parts=halves,
                                qualified=qualified_parts(key, language)))
        row += n
    return targets


def _phrased(key: str, texts: tuple[str, ...], vectors: np.ndarray, language: str, **fields) -> Target:
    """A :class:`Target` whose word families and polarity come from its phrasings ``texts``."""
    analyses = [analyze(t, language) for t in texts]
    negative = tuple(is_negative(a) for a in analyses)
    return Target(key, texts, vectors, tuple(content_stem_set(a) for a in analyses),
                  negative=negative if any(negative) else None,
                  signed=tuple(signed_stem_set(a) for a in analyses) if any(negative) else None, **fields)


class AnswerSpans:
    """The spans of one answer with their pooled vectors and negation marks."""

    def __init__(self, analysis: Analysis, encoding: Encoding, topic: np.ndarray | None = None,
                 names: tuple[str, ...] = (), alone: tuple[list, np.ndarray] | None = None,
                 spelling: dict[str, str] | None = None):
        """``topic``: a unit direction (the question's) removed from every span vector; ``names``: the
        entities the question contrasts (:func:`grader.scoring.roles.entities`); ``alone``: (word ranges,
        unit vectors) of clauses encoded on their own, more spans after the pooled ones; ``spelling``: the
        question's words and their families, that misspelt words are read as (spelling.py)."""
        self.analysis = analysis
        self.spelling = spelling
        words = analysis.words
        content = analysis.content
        # Per-span counts from prefix sums: O(1) per span however many spans a long answer has.
        content_prefix = [0, *accumulate(content)]
        self.ranges = _span_ranges(analysis, content_prefix)
        self.n_pooled = len(self.ranges)
        bounds = np.fromiter(chain.from_iterable(self.ranges), np.int64, 2 * len(self.ranges)).reshape(-1, 2)
        self._topic = topic
        self._sums, self._along, self._inverse_norms = _pool(words, encoding, bounds, topic)
        self.alone_off = None  # clauses encoded alone that state nothing (set by :meth:`silence`)
        self.wrong_off = None  # spans inside a stated misconception's evidence (set by :meth:`silence`)
        self._held: list[tuple[int, int]] = []  # that evidence, as character ranges
        if alone is not None and len(alone[0]):
            extra, vectors = list(alone[0]), np.asarray(alone[1], dtype=np.float32)
            self.ranges = self.ranges + extra
            bounds = np.concatenate([bounds, np.array(extra, dtype=np.int64).reshape(-1, 2)])
            self._sums = np.concatenate([self._sums, vectors.astype(self._sums.dtype)])
            squared = np.einsum("ij,ij->i", vectors, vectors)
            if topic is not None:
                along = vectors @ topic
                self._along = np.concatenate([self._along, along.astype(self._along.dtype)])
                squared = np.maximum(squared - along * along, 0.0)
            norms = np.sqrt(squared)
            norms[norms == 0] = 1.0
            self._inverse_norms = np.concatenate([self._inverse_norms, (1.0 / norms).astype(np.float32)])
        content_sum = np.array(content_prefix)
        self.span_content = (content_sum[bounds[:, 1]] - content_sum[bounds[:, 0]]).astype(np.float32)
        if any(analysis.negated):
            negated_content = [c and n for c, n in zip(content, analysis.negated)]
            negated_sum = np.array([0, *accumulate(negated_content)])
            negated_spans = negated_sum[bounds[:, 1]] - negated_sum[bounds[:, 0]]
            # A span is negated when most of its content words sit inside a negation scope, the negation
            # itself not counted ("the roots do not do photosynthesis": one word of two, not of three).
            cue = np.array([0, *accumulate(c and root(w.stem) in NEGATION_ROOTS for c, w in zip(content, words))])
            weighed = self.span_content - (cue[bounds[:, 1]] - cue[bounds[:, 0]])
            self.negated = (weighed > 0) & (negated_spans >= 0.5 * weighed)
            asserted = [c and not n for c, n in zip(content, negated_content)]
            self.negated_stems = frozenset(root(w.stem) for w, n in zip(words, negated_content) if n)
            self._denied_words = np.array([n and root(w.stem) not in NEGATION_ROOTS
                                           for w, n in zip(words, negated_content)], dtype=bool)
            # what a denial may cover, to its clause's end (Analysis.denied): wary targets read it
            self._denied_wide = np.array([c and d and root(w.stem) not in NEGATION_ROOTS
                                          for w, c, d in zip(words, content, analysis.denied or analysis.negated)],
                                         dtype=bool)
        else:  # most answers negate nothing
            self.negated = np.zeros(len(bounds), dtype=bool)
            asserted = content
            self.negated_stems = frozenset()
            self._denied_words = self._denied_wide = None
        self.any_negated = bool(self.negated.any())
        self._asserted = asserted
        self._bounds = bounds
        self.names = names
        # sentences that take back which side does what state nothing (roles.unsure_sentences)
        self._unsure = unsure_sentences(analysis)
        self.unsure_off = _in_ranges(self._unsure, bounds) > 0 if self._unsure is not None else None
        # Who each word is about, and each span's count of words about each entity (None: no roles).
        self.word_roles = word_roles(analysis, names) if names else None
        self.role_counts = span_role_counts(self.word_roles, len(names), bounds) if names else None
        self._units: dict = {}
        self._wrong_words: dict = {}  # target key -> words of sentences that state another target falsely
        self._distinct: dict = {}  # target key -> its own word families (TargetSet.distinct)
        self._wary: set = set()  # keys of targets a span denying any of their words does not state (TargetSet.wary)
        self._family_masks: dict = {}  # word families -> per word: whether it is of one (_of_families)
        self._said: dict = {}  # span index -> the word families it asserts (_says_it_of_other)

    def silence(self, matches, rivals: "TargetSet | None" = None, sims: np.ndarray | None = None,
                later: np.ndarray | None = None, full: float | None = None) -> None:
        """What a misconception the answer states (``matches``, at MISCONCEPTION_SURE or more) keeps from
        stating anything matched later (the key phrases).

        - A span inside its evidence is that wrong claim: "the plant breathes in oxygen" of "in
          photosynthesis the plant breathes in oxygen and breathes out carbon dioxide" is no "the plant
          releases oxygen".
        - A clause encoded on its own that overlaps its evidence states nothing more: "LSTMs use attention
          to look back" is a wrong claim, not a rough key phrase.
        - So does a clause on its own that goes on with it: ``rivals`` are the targets of ``matches``;
          ``sims`` and ``later`` every span's cosine with their phrasings and with those of the targets
          matched later (:meth:`similarities`); ``full`` the cosine at which a clause on its own fully states
          a later target (:class:`AloneScale` ``ceil``). A clause that reads as the misconception at that
          level, closer than to every later target, and names one of its own words goes on with it: in
          "Vanilla RNNs have too few parameters. The LSTM adds extra weight matrices for the gates", the
          second sentence, though on its own it reads close to "a cell state that is added to" too.

        An uncertain misconception silences nothing.
        """
        words = self.analysis.words
        stated = [k for k, m in enumerate(matches)
                  if m.strength >= MISCONCEPTION_SURE and not m.negated and m.start is not None]
        self._held = [(matches[k].start, matches[k].end) for k in stated]
        if self._held:
            inside = np.array([self._is_held(s, e) for s, e in self.ranges], dtype=bool)
            self.wrong_off = inside if inside.any() else None
        if len(self.ranges) == self.n_pooled:
            return
        off = np.array([any(words[s].start < end and start < words[e - 1].end for start, end in self._held)
                        for s, e in self.ranges[self.n_pooled :]], dtype=bool)
        if stated and rivals and full is not None and sims is not None and later is not None and later.size:
            per_rival = np.maximum.reduceat(sims[self.n_pooled :], rivals.starts, axis=1)
            bounds = self._bounds[self.n_pooled :]
            for k, own in enumerate(rivals.distinct or [frozenset()] * len(rivals)):
                if k not in stated:
                    per_rival[:, k] = -1.0
                elif own:
                    per_rival[_in_ranges(self._of_families(own), bounds) == 0, k] = -1.0
            rival = per_rival.max(axis=1)
            off |= (rival >= full) & (rival > later[self.n_pooled :].max(axis=1))
        self.alone_off = off if off.any() else None

    def _is_held(self, s: int, e: int) -> bool:
        """Whether the words [s, e) lie inside the evidence of a stated misconception (:meth:`silence`)."""
        words = self.analysis.words
        return any(start <= words[s].start and words[e - 1].end <= end for start, end in self._held)

    @property
    def vectors(self) -> np.ndarray:
        """Unit vector of each span, the topic direction removed."""
        out = self._sums if self._along is None else self._sums - np.outer(self._along, self._topic)
        return (out * self._inverse_norms[:, None]).astype(np.float32, copy=False)

    def similarities(self, matrix: np.ndarray) -> np.ndarray:
        """Cosine similarity of every span (rows) with every row of ``matrix`` (columns).

        Computed from the span sums without making the span vectors: products with the
        sums, less the topic component, scaled by each span's inverse length.
        """
        if len(self.ranges) == 0 or len(matrix) == 0:
            return np.zeros((len(self.ranges), len(matrix)), dtype=np.float32)
        products = self._sums @ matrix.T
        if self._along is not None:
            products -= np.outer(self._along, matrix @ self._topic)
        return products * self._inverse_norms[:, None]

    def match_all(self, targets: TargetSet | list[Target], sims: np.ndarray | None = None) -> list[Match]:
        """Best match of each target: one matrix product and one array pass for all of them (or the given ``sims``)."""
        if not isinstance(targets, TargetSet):
            targets = TargetSet.of(targets)
        if not targets:
            return []
        if not self.ranges:
            return [NO_MATCH] * len(targets)
        if sims is None:
            sims = self.similarities(targets.matrix)
        if not targets.complete:  # a target without vectors: one at a time
            out, col = [], 0
            for t in targets:
                w = len(t.vectors)
                out.append(self.match(t, sims[:, col : col + w], targets.scale))
                col += w
            return out
        strength, negated_hit, reversal = self._semantic(sims, targets.needed, targets.starts, targets.targets,
                                                         targets.scale, exclusive=True, alone=targets.alone,
                                                         wary=targets.wary)
        if targets.distinct is not None:
            negated_hit = negated_hit | self._topic_only(strength, targets.gate or targets.distinct, targets.targets)
            self._distinct.update((t.key, own) for t, own in zip(targets, targets.distinct) if own)
        if targets.wary:
            self._wary.update(t.key for t in targets if not any(t.negative or ()))
        for k, t in enumerate(targets):
            if t.qualified is not None:
                column = strength[:, k]
                lacking = ~self._qualified_spans(t.qualified)
                column[lacking] = np.minimum(column[lacking], FOUND - 0.01)
        best_span = strength.argmax(axis=0)
        out = [self._finish(t, float(strength[best_span[k], k]), int(best_span[k]), bool(negated_hit[k]),
                            None if reversal is None else (float(reversal[0][k]), int(reversal[1][k])))
               for k, t in enumerate(targets)]
        for k, t in enumerate(targets):
            if t.parts is not None:
                out[k] = self._cause_and_effect(t, out[k], targets.scale, targets.alone)
        return out

    def _topic_only(self, strength: np.ndarray, distinct, targets=()) -> np.ndarray:
        """Cap below FOUND, in place, the strength of spans made only of the question's topic words ("the
        previous hidden state" for "the hidden state is repeatedly multiplied", "the LSTM fixes it with its
        cell state" for "a cell state updated additively"): one that asserts none of a target's own word
        families does not state it, however close it reads. One that names them only under a negation
        ("the cell state is never updated by addition") denies the target: such a span, read as stating
        it, is zeroed, and the returned mask (per target) says a denial was found."""
        asserted = np.asarray(self._asserted, dtype=bool)
        denied = np.zeros(strength.shape[1], dtype=bool)
        for k, own in enumerate(distinct):
            if not own:
                continue
            mine = self._of_families(own)
            # a concept that says something is not so ("no congestion control") names its words denied
            shares = _in_ranges(mine if targets and targets[k].negative else mine & asserted, self._bounds) > 0
            denial = ~shares & (_in_ranges(mine, self._bounds) > 0) & (strength[:, k] >= FOUND)
            column = strength[:, k]
            column[~shares] = np.minimum(column[~shares], FOUND - 0.01)
            if denial.any():
                column[denial] = 0.0
                denied[k] = True
        return denied

    def _says_both(self, qualified: tuple[frozenset, frozenset]) -> np.ndarray:
        """Per sentence: whether it asserts a word of X and one of Y of an "X with Y" concept."""
        cached = self._family_masks.get(qualified)
        if cached is None:
            family, asserted = self._families, self._asserted
            cached = self._family_masks[qualified] = np.array(
                [all(any(family[i] in part and asserted[i] for i in range(s, e)) for part in qualified)
                 for s, e in self.analysis.sentences], dtype=bool)
        return cached

    def _qualified_spans(self, qualified: tuple[frozenset, frozenset]) -> np.ndarray:
        """Per span: whether the sentence it starts in says both X and Y of an "X with Y" concept."""
        both = self._says_both(qualified)
        return both[self._span_sentence] if len(both) else np.zeros(len(self.ranges), dtype=bool)

    def _of_families(self, own: frozenset[str]) -> np.ndarray:
        """Per word: whether its plain family (no "every step"; "used up" is "consumed"), or the family a
        misspelt or short form reads as (:attr:`_families`), is one of ``own``, or begins with a short one of
        them ("back" of "backward")."""
        cached = self._family_masks.get(own)
        if cached is None:
            short = tuple(f for f in own if 3 <= len(f) < ROOT)
            fixed = self._families and self._fixed  # worked out with the families
            particles = self._particles
            cached = self._family_masks[own] = np.array(
                [r in own or r.startswith(short) or fixed.get(i) in own or particles.get(i) in own
                 for i, r in enumerate(self._plain_roots)], dtype=bool)
        return cached

    def _cause_and_effect(self, target: Target, whole: Match, scale: tuple[float, float],
                          alone: AloneScale | None = None) -> Match:
        """A "cause, so effect" target: as strong as the weaker of its cause and its effect, each matched on
        its own in one sentence or two neighbouring ones (the evidence runs from one to the other). A lexical
        match of the whole phrasing stands. Where every phrasing of a half uses some of the target's own words,
        a span that names none of them (said or denied) does not state that half."""
        cause, effect = target.parts
        sims = self.similarities(np.concatenate([cause.vectors, effect.vectors]))
        strength = self._semantic(sims, _needed([*cause.stems, *effect.stems]), np.array([0, len(cause.vectors)]),
                                  target.parts, scale, alone=alone)[0]
        own = self._distinct.get(target.key)
        for side, part in enumerate(target.parts if own else ()):
            mine = [stems & own for stems in part.stems]
            if all(mine):  # every phrasing of the half has words of its own: a span must name one
                words = frozenset().union(*mine)
                lacking = _in_ranges(self._of_families(words), self._bounds) == 0
                strength[lacking, side] = np.minimum(strength[lacking, side], FOUND - 0.01)
        sentence = self._span_sentence
        n = len(self.analysis.sentences)
        best = np.zeros((2, n))
        where: list[list] = [[None] * n, [None] * n]  # the word range of each side's best span per sentence
        starts = [s for s, _ in self.analysis.sentences]
        for side, part in enumerate(target.parts):
            column = strength[:, side]
            order = np.lexsort((column, sentence))  # by sentence, strongest last
            last = np.r_[sentence[order][1:] != sentence[order][:-1], True]
            best[side, sentence[order][last]] = column[order][last]
            for i in order[last]:
                where[side][sentence[i]] = self.ranges[i]
            # A half stated in the phrasing's own words ("vanishing/exploding grads") counts as a word match of it.
            lexical, unit = self._lexical(part)[:2]
            if lexical > 0:
                at = bisect_right(starts, unit[0]) - 1
                if lexical > best[side, at]:
                    best[side, at], where[side][at] = lexical, unit
        # cause in sentence i, effect in sentence j, |i - j| <= 1
        pair, pair_at = 0.0, None
        for shift in (-1, 0, 1):
            i = np.arange(max(0, -shift), min(n, n - shift))
            both = np.minimum(best[0, i], best[1, i + shift])
            if len(both) and both.max() > pair:
                pair = min(float(both.max()), 1.0)
                at = int(i[both.argmax()])
                pair_at = (where[0][at], where[1][at + shift])
        # Halves about two entities are read each about its own: the whole phrasing's words, said in any order of
        # the two, do not state it ("mitosis makes gametes, meiosis serves growth").
        sided = target.parts[0].role != target.parts[1].role
        if (whole.method == "lexical" and whole.strength >= pair and not sided) or (whole.negated and pair < FOUND):
            return whole
        lexical, unit = self._lexical(target)[:2] if not sided else (0.0, None)
        if lexical >= max(pair, FOUND):  # the whole phrasing's words, though a closer paraphrase missed a half
            return self._make(lexical, unit, "lexical")
        if pair_at is None:
            return Match(0.0, None, None, None, None, whole.negated)
        a, b = pair_at
        return self._make(pair, (min(a[0], b[0]), max(a[1], b[1])), "semantic")

    @cached_property
    def _plain_roots(self) -> list[str]:
        """Each word's plain family (:func:`root` of its stem), worked out once."""
        return [root(w.stem) for w in self.analysis.words]

    @cached_property
    def _numbers(self) -> list[str | None]:
        """Each word's number (:func:`~grader.scoring.roles.number_of`) or None, worked out once."""
        return [number_of(w.norm) for w in self.analysis.words]

    @cached_property
    def _particles(self) -> dict[int, str]:
        """Word index -> family of the answer's particle verbs ("used up": consumed), worked out once."""
        return particle_families(self.analysis)

    @cached_property
    def _clause_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clause bounds, the clause of each word, whether each span lies within one clause)."""
        clauses = np.array(self.analysis.clauses, dtype=np.int64).reshape(-1, 2)
        clause_of = np.searchsorted(clauses[:, 0], np.arange(len(self.analysis.words)), side="right") - 1
        return clauses, clause_of, clause_of[self._bounds[:, 0]] == clause_of[self._bounds[:, 1] - 1]

    @property
    def _span_sentence(self) -> np.ndarray:
        """The index of the sentence each span starts in."""
        if not hasattr(self, "_sentence_of"):
            starts = np.array([s for s, _ in self.analysis.sentences], dtype=np.int64)
            self._sentence_of = np.maximum(starts.searchsorted(self._bounds[:, 0], side="right") - 1, 0)
        return self._sentence_of

    def strengths(self, targets: TargetSet, sims: np.ndarray | None = None) -> list[float]:
        """The strength of each target's best match, as :meth:`match_all` gives it, without the matches.

        For targets only counted, never shown (reference sentences): no evidence text is cut.
        """
        if not targets.complete or not self.ranges or targets.roles is not None \
                or any(t.contrast is not None for t in targets):
            return [m.strength for m in self.match_all(targets, sims)]
        if sims is None:
            sims = self.similarities(targets.matrix)
        semantic_best = np.minimum(self._semantic(sims, targets.needed, targets.starts, (), targets.scale)[0].max(axis=0),
                                   1.0).tolist()
        out = []
        for target, semantic in zip(targets, semantic_best):
            strength = round(semantic, 4) if semantic > 0 else 0.0
            lexical = self._lexical(target)[0]
            out.append(round(lexical, 4) if lexical > strength else strength)
        return out

    def match(self, target: Target, sims: np.ndarray | None = None,
              scale: tuple[float, float] = (SEMANTIC_FLOOR, SEMANTIC_CEIL)) -> Match:
        """Best match of ``target`` in this answer; ``sims`` are its precomputed span similarities."""
        if not self.ranges:
            return NO_MATCH
        if sims is None:
            sims = self.similarities(target.vectors)
        if not sims.size:
            return self._finish(target, 0.0, 0, False)
        strength, negated_hit, reversal = self._semantic(sims, _needed(list(target.stems)), np.array([0]), (target,),
                                                         scale)
        i = int(strength[:, 0].argmax())
        return self._finish(target, float(strength[i, 0]), i, bool(negated_hit[0]),
                            None if reversal is None else (float(reversal[0][0]), int(reversal[1][0])))

    def _semantic(self, sims: np.ndarray, needed: np.ndarray, starts: np.ndarray, targets=(),
                  scale: tuple[float, float] = (SEMANTIC_FLOOR, SEMANTIC_CEIL), exclusive: bool = False,
                  alone: AloneScale | None = None, wary: bool = False):
        """(span x target strengths, whether a negated span states each target, reversal).

        Columns of ``sims`` are phrasings, ``needed`` their content words for full strength
        (:func:`_needed`); ``starts`` gives each target's first column. Spans that are negated,
        or that reverse a target (:meth:`_role_masks`), are zeroed in its column; ``reversal`` is
        None when no target can be reversed, else (strength, span) of each target's strongest
        reversing span.
        """
        # A span much shorter than a phrasing cannot state all of it.
        sims = sims * np.minimum(1.0, self.span_content[:, None] / needed[None, :])
        negated = self._negated_for(targets, starts, wary)  # (spans x targets)
        any_negated = bool(negated.any())
        polarity = _column_polarity(targets, sims.shape[1]) if targets else None
        if polarity is not None:
            # A phrasing that says something is not so ("UDP has no congestion control") is stated by a
            # negated span as well, and contradicted by one that asserts what it denies ("UDP adapts its rate").
            widths = np.diff(np.r_[starts, sims.shape[1]])
            agree = np.where(np.repeat(negated, widths, axis=1), polarity[None, :], True) \
                & ~self._asserts_denied(targets)
            opposed = np.maximum.reduceat(np.where(agree, -1.0, sims), starts, axis=1)
            sims = np.where(agree, sims, -1.0)
        per_span = np.maximum.reduceat(sims, starts, axis=1)
        floor, ceil = scale
        strength = (per_span - floor) / (ceil - floor)
        if len(per_span) > self.n_pooled:
            # Clauses encoded on their own read on a scale of their own (TargetSet.alone); none: no match.
            if alone is None:
                strength[self.n_pooled :] = 0.0
            else:
                alone_sims = per_span[self.n_pooled :]
                own = np.maximum((alone_sims - alone.floor) / (alone.ceil - alone.floor), 0.0)
                # On its own a clause reads close to every concept of its topic: it states only the one it
                # reads closest to.
                own[alone_sims < alone_sims.max(axis=1, keepdims=True)] = 0.0
                if self.alone_off is not None:
                    own[self.alone_off] = 0.0
                strength[self.n_pooled :] = own
        np.maximum(strength, 0.0, out=strength)  # not capped at 1: the closest of two saturated spans wins
        if self.wrong_off is not None:
            strength[self.wrong_off] = 0.0
        if self.unsure_off is not None:
            strength[self.unsure_off] = 0.0
        reversal = None
        masks = self._role_masks(targets) if targets else None
        if masks is not None:
            allowed, reversing = masks
            reversed_strength = np.where(reversing, strength, 0.0)
            if exclusive and strength.shape[1] > 1:
                # A span that reads closer to another target states that one ("mitosis gives two identical
                # cells" of "mitosis makes two identical cells"), it reverses none.
                reversed_strength[per_span < per_span.max(axis=1, keepdims=True)] = 0.0
            if any_negated and polarity is None:
                reversed_strength[negated] = 0.0  # "the RNN does not add": no reversal either
            where = reversed_strength.argmax(axis=0)
            reversal = (reversed_strength[where, np.arange(strength.shape[1])], where)
            strength = np.where(allowed, strength, 0.0)
        if polarity is not None:
            against = np.maximum((opposed - floor) / (ceil - floor), 0.0)
            against[self.n_pooled :] = 0.0
            if masks is not None:
                against = np.where(masks[0], against, 0.0)
            return strength, (against >= FOUND).any(axis=0), reversal
        if not any_negated:
            return strength, np.zeros(strength.shape[1], dtype=bool), reversal
        negated_hit = ((strength >= FOUND) & negated).any(axis=0)
        strength[negated] = 0.0
        return strength, negated_hit, reversal

    def _negated_for(self, targets, starts: np.ndarray, wary: bool = False) -> np.ndarray:
        """(spans x targets, one column per start of ``starts``): whether each span, read as a statement of each
        target, is negated. It is when most of its content words lie in a negation scope (:attr:`negated`), or
        when half or more of the words it shares with the target's phrasings do: in "the vanilla RNN's
        recurrence is not multiplicative" the subject is asserted and what is said of it denied. A span within one
        clause is read with its clause: "RNN's recurrence is", cut from that clause, states nothing. ``wary``
        (misconceptions): a span is negated for a target when any clause it touches denies any of the target's
        words, a denial read to the end of its clause (:attr:`~grader.text.Analysis.denied`)."""
        out = np.repeat(self.negated[:, None], len(starts), axis=1)
        if self._denied_words is None or not len(targets):
            return out
        clauses, clause_of, within = self._clause_index
        content = np.asarray(self.analysis.content, dtype=bool)
        for k, t in enumerate(targets):
            mine = self._of_families(frozenset().union(*t.stems) - NEGATION_ROOTS) & content
            if wary and not any(t.negative or ()):
                # any clause the span touches denies one of the target's words, read to the clause's end
                wide = _in_ranges(mine & self._denied_wide, clauses) > 0
                touched = np.r_[0, np.cumsum(wide)]
                first, last = clause_of[self._bounds[:, 0]], clause_of[self._bounds[:, 1] - 1]
                out[:, k] |= touched[last + 1] > touched[first]
                continue
            denied = mine & self._denied_words
            d, n = _in_ranges(denied, self._bounds), _in_ranges(mine, self._bounds)
            cd, cn = _in_ranges(denied, clauses), _in_ranges(mine, clauses)
            if t.contrast is not None and t.contrast.numbers:
                # "the forget gate must NOT be close to 1" denies "near 1": its number counts, though no content word
                said = np.array([v in t.contrast.numbers for v in self._numbers], dtype=bool)
                numbers_denied = said & np.asarray(self.analysis.negated, dtype=bool)
                if numbers_denied.any():
                    d = d + _in_ranges(numbers_denied, self._bounds)
                    n = n + _in_ranges(said, self._bounds)
                    cd = cd + _in_ranges(numbers_denied, clauses)
                    cn = cn + _in_ranges(said, clauses)
            clause_denies = (cd > 0) & (2 * cd >= cn)
            out[:, k] |= ((d > 0) & (2 * d >= n)) | (within & clause_denies[clause_of[self._bounds[:, 0]]])
        return out

    def _asserts_denied(self, targets) -> np.ndarray:
        """(spans x phrasings): whether a span asserts at least half of the words that one of its target's
        negative phrasings denies ("UDP adapts its sending rate" against "UDP does not adapt its sending
        rate"): it contradicts every phrasing of that target."""
        columns = []
        family, asserted = self._families, np.asarray(self._asserted, dtype=bool)
        for t in targets:
            contradicts = np.zeros(len(self.ranges), dtype=bool)
            for k in range(len(t.vectors) if t.negative else 0):
                denied = {f[1:] for f in t.signed[k] if f.startswith("~")} if t.negative[k] else ()
                if denied:
                    said = np.zeros(len(self.ranges))
                    for f in denied:
                        said += _in_ranges(np.array([fam == f for fam in family]) & asserted, self._bounds) > 0
                    contradicts |= said >= max(1.0, len(denied) / 2)
            columns.extend([contradicts] * len(t.vectors))
        return np.column_stack(columns) if columns else np.zeros((len(self.ranges), 0), dtype=bool)

    def _role_masks(self, targets) -> tuple[np.ndarray, np.ndarray] | None:
        """(allowed, reversing): spans (rows) that may state each target (columns), and spans that reverse it.

        A span about another entity than the target's (roles.py) reverses it; so does one of its
        own entity that asserts an opposite of its words or another number. Both at once ("the
        RNN multiplies" against "the LSTM adds") is no reversal: that span is true, and about
        something else. A span about several entities neither states nor reverses a target.
        None when no target has a role or a contrast.
        """
        with_role = self.role_counts is not None and any(t.role != NO_ROLE for t in targets)
        with_contrast = any(t.contrast is not None for t in targets)
        if not (with_role or with_contrast):
            return None
        shape = (len(self.ranges), len(targets))
        allowed = np.ones(shape, dtype=bool)
        reversing = np.zeros(shape, dtype=bool)
        total = self.role_counts.sum(axis=1) if with_role else None
        # word families that concepts of two different entities use: saying them of one says neither's concept
        by_role: dict[int, set] = {}
        for t in targets if with_role else ():
            if t.role != NO_ROLE:
                by_role.setdefault(t.role, set()).update(*t.stems)
        shared = frozenset(f for r, fs in by_role.items() for f in fs
                           if any(f in other for o, other in by_role.items() if o != r))
        for k, t in enumerate(targets):
            role_reversed = None
            if with_role and t.role != NO_ROLE:
                own = self.role_counts[:, t.role]
                other = total - own
                allowed[:, k] = other == 0
                role_reversed = (other > 0) & (own == 0)
            if t.contrast is not None:
                opposite, mixed = reversed_spans(self.analysis, t.contrast, self._bounds)
                reversing[:, k] = allowed[:, k] & opposite
                if role_reversed is not None:
                    reversing[:, k] |= self._says_it_of_other(t, role_reversed & ~opposite & ~mixed, shared)
                allowed[:, k] &= ~(opposite | mixed)
            elif role_reversed is not None:
                reversing[:, k] = self._says_it_of_other(t, role_reversed, shared)
        # A sentence that gives one concept a wrong number ("when the forget gate is close to 0 the old cell
        # state is preserved"), or reverses one about its own entity ("the LSTM's gates multiply the
        # gradient"), states none of the others.
        for j, t in enumerate(targets):
            if t.contrast is None:
                continue
            wrong = misnumbered_sentences(self.analysis, t.contrast, self.word_roles, t.role) \
                if t.contrast.numbers else None
            if self.word_roles is not None and (t.contrast.opposite or t.contrast.comparisons) and t.role != NO_ROLE:
                reversed_here = reversed_sentences(self.analysis, t.contrast, self.word_roles, t.role)
                wrong = reversed_here if wrong is None else wrong | reversed_here
            if wrong is not None and wrong.any():
                inside = _in_ranges(wrong, self._bounds) > 0
                others = np.arange(len(targets)) != j
                allowed[:, others] &= ~inside[:, None]
                for other in (o for o in targets if o is not t):  # nor do its words (:meth:`_lexical`)
                    held = self._wrong_words.get(other.key)
                    self._wrong_words[other.key] = wrong if held is None else held | wrong
        return allowed, reversing

    def _says_it_of_other(self, target: Target, about_other: np.ndarray,
                          shared: frozenset = frozenset()) -> np.ndarray:
        """Which spans about another entity (``about_other``) say the target of it: they assert its own
        side of a contrast ("the RNN adds" of the LSTM's additive update) or half of one phrasing's word
        families that most phrasings share (:func:`_core`: "UDP retransmits lost segments"). A span that
        only reads like it ("the LSTM's gradient passes back unchanged" of the RNN's vanishing gradient)
        says something else, and reverses nothing. Words that concepts of the other entity use too (``shared``:
        "the function", "the caller's variable" of pass by value and by reference) are no part of the core."""
        out = about_other.copy()
        rows = np.flatnonzero(about_other)
        if not len(rows):
            return out
        own = own_side_spans(self.analysis, target.contrast, self._bounds) if target.contrast is not None else None
        core = _core(target.stems) - shared
        needed = [(st, 0.5 * len(st)) for st in {core & stems for stems in target.stems} if st]
        family, asserted = self._families, self._asserted
        # a span with none of the core's words says none of it: most spans are dismissed by two lookups
        mine = np.concatenate([[0], np.cumsum([f in core for f in family])])
        for i in rows:
            if own is not None and own[i]:
                continue
            a, b = self.ranges[i]
            if not needed or mine[b] == mine[a]:
                out[i] = False
                continue
            said = self._said.get(i)
            if said is None:
                said = self._said[i] = {family[j] for j in range(a, b) if asserted[j]}
            out[i] = any(len(said & st) >= half for st, half in needed)
        return out

    @property
    def _families(self) -> list[str]:
        """Each word's family (:func:`~grader.scoring.roles.families`), a misspelt word taking the family of
        the question's word it misspells (spelling.py)."""
        if not hasattr(self, "_family_of"):
            out = families(self.analysis, self._particles)
            self._fixed = {}  # word index -> the family a misspelt or short form reads as
            if self.spelling:
                known = set(self.spelling.values())
                for i, (w, content) in enumerate(zip(self.analysis.words, self.analysis.content)):
                    fixed = corrected_family(w.norm, self.spelling) if content else None
                    if fixed is not None:
                        out[i] = self._fixed[i] = fixed
                    elif content and (4 <= len(out[i]) or len(out[i]) == 3 and _acronym(w.text)) \
                            and len(out[i]) < ROOT and out[i] not in known:
                        # a clipped word ("grads" of "gradients", "params") or a capitalised short form
                        # ("ACKs" of "acknowledgements") takes the one family it begins
                        longer = {f for f in known if f.startswith(out[i])}
                        if len(longer) == 1:
                            out[i] = self._fixed[i] = longer.pop()
            self._family_of = out
        return self._family_of

    def _finish(self, target: Target, semantic: float, span: int, negated_hit: bool,
                reversal: tuple[float, int] | None = None) -> Match:
        """The stronger of the semantic and the lexical match, marked negated when only a negation states it.

        A match whose span is closer to one of the target's counter-examples than to any of its
        phrasings is no match: an instructor said that sentence does not state the concept. A
        reversal (the concept said of the other entity, or its opposite said) at least as strong
        as the best statement makes the concept negated: the answer claims the opposite.
        """
        best = self._make(min(semantic, 1.0), self.ranges[span], "semantic") if semantic > 0 else NO_MATCH
        best_range = self.ranges[span] if semantic > 0 else None
        lexical, unit, lexical_reversed, reversed_unit = self._lexical(target)
        if lexical > best.strength:
            best = self._make(lexical, unit, "lexical")
            best_range = unit
        if target.counter is not None and best.found and best_range is not None and self._vetoed(target, best_range):
            # a vetoed word match leaves the closest span, when that one is not vetoed itself
            fallback = self.ranges[span] if semantic > 0 and best_range != self.ranges[span] else None
            if fallback is None or min(semantic, 1.0) < FOUND or self._vetoed(target, fallback):
                return NO_MATCH
            best = self._make(min(semantic, 1.0), fallback, "semantic")
        if best.found and best_range is not None and self._denied_beside(target, best_range):
            return Match(0.0, best.evidence, best.start, best.end, best.method, True)
        reversed_match = None
        if reversal is not None and reversal[0] >= FOUND:
            reversed_match = self._make(min(reversal[0], 1.0), self.ranges[reversal[1]], "semantic")
        if lexical_reversed >= FOUND and (reversed_match is None or lexical_reversed > reversed_match.strength):
            reversed_match = self._make(lexical_reversed, reversed_unit, "lexical")
        # Strengths beyond 1 (cosines above the scale's top) still rank a reversal against a statement.
        reversed_strength = max(reversal[0] if reversal is not None and reversal[0] >= FOUND else 0.0, lexical_reversed)
        if reversed_match is not None and reversed_strength >= max(best.strength, semantic):
            return Match(min(best.strength, PARTIAL - 0.01) if best.strength else 0.0, reversed_match.evidence,
                         reversed_match.start, reversed_match.end, reversed_match.method, True)
        if not best.found:
            negated_hit = negated_hit or reversed_match is not None or bool(self.negated_stems) and any(
                stems and len(stems & self.negated_stems) / len(stems) >= 0.6
                for stems, negative in zip(target.stems, target.negative or repeat(False)) if not negative
            )
            if negated_hit:
                best = Match(best.strength, best.evidence, best.start, best.end, best.method, True)
        return best

    def _denied_beside(self, target: Target, word_range: tuple[int, int]) -> bool:
        """Whether the sentence of ``word_range`` denies what the span leaves of ``target``: at least two of a
        phrasing's words, and half of them, that the span does not assert. "The receiver's advertised window
        only protects the receiver's buffer; it is not what slows the sender down when the network is congested"
        names the subject of "the receiver's advertised window slows the sender down when the network is
        congested" and denies the rest."""
        if self._denied_words is None:
            return False
        sentences, words, text = self.analysis.sentences, self.analysis.words, self.analysis.text
        k = next((k for k, (s, e) in enumerate(sentences) if s <= word_range[0] < e), None)
        if k is None:
            return False
        s, e = sentences[k]
        # sentences joined by a semicolon are one statement
        while k > 0 and ";" in text[words[s - 1].end : words[s].start]:
            k -= 1
            s = sentences[k][0]
        while e < len(words) and ";" in text[words[e - 1].end : words[e].start]:
            e = next(b for a, b in sentences if a == e)
        family, asserted = self._families, self._asserted
        said = {family[i] for i in range(word_range[0], word_range[1]) if asserted[i]}
        denied = {family[i] for i in range(s, e) if self._denied_words[i]} - said
        if not denied:
            return False
        for stems, negative in zip(target.stems, target.negative or repeat(False)):
            if stems and not negative:
                hit = len(stems & denied)
                if hit >= 2 and 2 * hit >= len(stems):
                    return True
        return False

    def _vetoed(self, target: Target, word_range: tuple[int, int]) -> bool:
        """Whether the span ``word_range``, or the clause of it that reads closest to ``target``, is closer
        to a counter-example of ``target`` than to any phrasing ("LSTMs keep a separate cell" may read like
        "LSTMs have more parameters"; its clause "LSTMs keep a separate cell state which is updated additively"
        does not). A range over several clauses is judged by the one that states the target alone, not by the
        one it starts in ("Natural selection works like this: when the environment changes, the individuals
        adapt...") nor by the whole, whose other clauses may read like anything."""
        clauses = [self._range_index.get(tuple(c)) for c in self.analysis.clauses
                   if c[0] < word_range[1] and word_range[0] < c[1] and tuple(c) != tuple(word_range)]
        clauses = [i for i in clauses if i is not None]
        if len(clauses) > 1 and len(target.vectors):
            rows = [max(clauses, key=lambda i: float(self._row_similarities(slice(i, i + 1), target.vectors).max()))]
        else:
            rows = [self._range_index.get(tuple(word_range)), *clauses]
        for index in rows:
            if index is None:
                continue
            row = slice(index, index + 1)
            against = float(self._row_similarities(row, target.counter).max())
            towards = float(self._row_similarities(row, target.vectors).max()) if len(target.vectors) else -1.0
            if against > towards:
                return True
        return False

    @property
    def _range_index(self) -> dict:
        if not hasattr(self, "_ranges_at"):
            self._ranges_at = {tuple(r): i for i, r in enumerate(self.ranges[: self.n_pooled])}
        return self._ranges_at

    def _row_similarities(self, rows: slice, matrix: np.ndarray) -> np.ndarray:
        products = self._sums[rows] @ matrix.T
        if self._along is not None:
            products = products - np.outer(self._along[rows], matrix @ self._topic)
        return products * self._inverse_norms[rows, None]

    def _lexical(self, target: Target) -> tuple[float, tuple[int, int], float, tuple[int, int]]:
        """(share, unit) of the best lexical statement of ``target`` and of its best reversal.

        Units are the answer's sentences; for a target with a role, the runs of a sentence's
        words about its entity (or none), and the runs about another entity are reversals.
        A unit that asserts an opposite of the target's words reverses it too.
        """
        allowed, reversing = self._lexical_units(target)
        wrong = self._wrong_words.get(target.key)
        if wrong is not None:  # a sentence built on another concept's false claim states nothing else
            allowed = [unit for unit in allowed if not wrong[unit[0][0] : unit[0][1]].any()]
        own = self._distinct.get(target.key)
        if own is not None:  # nor does one without any of the concept's own words (:meth:`_topic_only`)
            mine = self._of_families(own)
            allowed = [unit for unit in allowed if mine[unit[0][0] : unit[0][1]].any()]
        if target.qualified is not None:  # nor one without both X and Y of "X with Y"
            allowed = [unit for unit in allowed if all(unit[1] & part for part in target.qualified)]
        if target.key in self._wary and self._denied_words is not None:  # nor one that denies any of its words
            denied = self._of_families(frozenset().union(*target.stems) - NEGATION_ROOTS) & self._denied_wide
            allowed = [unit for unit in allowed if not denied[unit[0][0] : unit[0][1]].any()]
        if self._held:  # nor the words of a stated misconception (:meth:`silence`)
            allowed = [unit for unit in allowed if not self._is_held(*unit[0])]
        if self._unsure is not None:  # nor a sentence that takes back which side does what
            allowed = [unit for unit in allowed if not self._unsure[unit[0][0] : unit[0][1]].any()]
            reversing = [unit for unit in reversing if not self._unsure[unit[0][0] : unit[0][1]].any()]
        best, where = self._best_share(target, allowed)
        rev, rev_where = self._best_share(target, reversing) if reversing else (0.0, None)
        empty = (0, 0)
        return best, self._clauses_of(target, where) if where else empty, rev, rev_where or empty

    def _clauses_of(self, target: Target, unit: tuple[int, int]) -> tuple[int, int]:
        """The part of ``unit`` (a word range) from the first to the last clause that holds one of
        ``target``'s words: the evidence of a word match is the clauses that state it, not the sentence."""
        start, end = unit
        family = self._families
        words = set().union(*target.stems)
        asserted = self._asserted
        hits = [i for i in range(start, end) if family[i] in words
                and (asserted[i] or family[i] == REPEATED_ROOT or target.negative is not None)]
        if not hits:
            return unit
        first = next((c for c in self.analysis.clauses if c[0] <= hits[0] < c[1]), (hits[0], hits[0] + 1))
        last = next((c for c in self.analysis.clauses if c[0] <= hits[-1] < c[1]), (hits[-1], hits[-1] + 1))
        return max(start, first[0]), min(end, last[1])

    def _lexical_units(self, target: Target):
        """(allowed, reversing) lists of (word range, asserted stems) for ``target``."""
        role = target.role if self.word_roles is not None else NO_ROLE
        key = (role, target.contrast)
        cached = self._units.get(key)
        if cached is not None:
            return cached
        words, asserted = self.analysis.words, self._asserted
        if role == NO_ROLE:
            runs = [((s, e), True) for s, e in self.analysis.sentences]
        else:
            runs = []
            roles = self.word_roles
            for s, e in self.analysis.sentences:
                start = s
                for i in range(s, e + 1):
                    kind = None if i == e else (roles[i] == role or roles[i] == NO_ROLE, roles[i] >= 0)
                    if i > start and (i == e or kind != prev):
                        if prev[0]:
                            runs.append(((start, i), True))
                        elif prev[1]:  # about one other entity
                            runs.append(((start, i), False))
                        start = i
                    prev = kind
        opposite = mixed = np.zeros(len(runs), dtype=bool)
        if target.contrast is not None and runs:
            opposite, mixed = reversed_spans(self.analysis, target.contrast,
                                             np.array([r for r, _ in runs], dtype=np.int64))
        allowed, reversing = [], []
        family, negated, content = self._families, self.analysis.negated, self.analysis.content
        for ((s, e), own), opp, both in zip(runs, opposite, mixed):
            if both:  # "by addition, or possibly multiplication": neither side is stated
                continue
            said = [asserted[i] or (family[i] == REPEATED_ROOT and not negated[i]) for i in range(s, e)]
            # what the unit asserts, and (marked "~") the content words it denies, for negative phrasings
            unit = ((s, e), frozenset(family[i] if said[i - s] else "~" + family[i] for i in range(s, e)
                                      if said[i - s] or (content[i] and negated[i])))
            if own and not opp:
                allowed.append(unit)
            elif own != opp:  # one reversal, not two
                reversing.append(unit)
        self._units[key] = (allowed, reversing)
        return allowed, reversing

    def _best_share(self, target: Target, units) -> tuple[float, tuple[int, int] | None]:
        best, where = 0.0, None
        own = self._distinct.get(target.key)
        # a negative phrasing's denied words must be denied in the answer too ("~congest", signed_stem_set)
        for stems in target.signed or target.stems:
            if not stems:
                continue
            # words of the question's topic ("cell state"), or of one phrasing only, weigh half of the
            # concept's own words ("additive", :meth:`TargetSet.of`)
            weight = {f: 1.0 if own is None or f.lstrip("~") in own else TOPIC_WEIGHT for f in stems}
            total = sum(weight.values())
            for word_range, unit in units:
                share = sum(weight[f] for f in stems & unit) / total
                # Matching one word of a long phrase is weak evidence; all of them is full evidence,
                # and all but one of three or more reaches FOUND only from four words on.
                score = share**LEXICAL_POWER if len(stems) > 1 else share
                if score > best:
                    best, where = score, word_range
        return best, where

    def _make(self, strength: float, word_range: tuple[int, int], method: str) -> Match:
        s, e = word_range
        words = self.analysis.words
        return Match(round(strength, 4), self.analysis.span_text(s, e), words[s].start, words[e - 1].end, method,
                     False)


def _acronym(text: str) -> bool:
    """A short form in capitals: "ACK", "ACKs"."""
    letters = text[:-1] if text.endswith("s") else text
    return len(letters) >= 2 and letters.isalpha() and letters.isupper()


def _in_ranges(mask, bounds: np.ndarray) -> np.ndarray:
    """How many words of ``mask`` (per word) each [start, end) row of ``bounds`` holds, from prefix sums."""
    prefix = np.concatenate([[0], np.cumsum(mask)])
    return prefix[bounds[:, 1]] - prefix[bounds[:, 0]]


def _column_polarity(targets, width: int) -> np.ndarray | None:
    """Per phrasing (column) of ``targets``: whether it is negative; None when none is (the common case)."""
    if not any(t.negative for t in targets):
        return None
    out = np.concatenate([np.asarray(t.negative if t.negative else (False,) * len(t.vectors), dtype=bool)
                          for t in targets]) if targets else np.zeros(0, dtype=bool)
    return out if len(out) == width else None


def _span_ranges(analysis: Analysis, content_prefix: list[int]) -> list[tuple[int, int]]:
    """Clauses, sentences and windows inside sentences that hold at least two content words.

    ``content_prefix[i]`` is the number of content words before word ``i``.
    """
    n = len(analysis.words)
    ranges = set(analysis.clauses) | set(analysis.sentences)
    budget = max(1, MAX_SPANS - len(ranges))
    stride = max(1, (n * len(WINDOW_SIZES)) // budget)
    for s, e in analysis.sentences:
        for size in WINDOW_SIZES:
            if size < e - s:
                ranges.update(zip(range(s, e - size + 1, stride), range(s + size, e + 1, stride)))
    return [(s, e) for s, e in sorted(ranges) if content_prefix[e] - content_prefix[s] >= (2 if e - s >= 2 else e - s)]


def _pool(words, encoding: Encoding, bounds: np.ndarray, topic: np.ndarray | None = None):
    """(sums, along, inverse norms) of the token vectors under each word range (rows of ``bounds``).

    ``sums`` holds each span's summed token vectors, ``along`` their component along the
    unit ``topic`` (None without one), ``inverse norms`` one over the length of each sum
    with that component removed: the span's unit vector is ``(sum - along * topic) * inverse``.
    A short answer's sums are one product with the spans' token masks; a long one's come
    from prefix sums, whose cost does not grow with the number of spans.
    """
    tokens = encoding.tokens
    n_tokens = len(tokens)
    if not len(bounds) or n_tokens == 0:
        empty = np.zeros(len(bounds), dtype=np.float32)
        sums = np.zeros((len(bounds), encoding.vector.shape[0]), dtype=np.float32)
        return sums, None if topic is None else empty, empty
    offsets = encoding.offsets
    n_words = len(words)
    word_starts = np.fromiter(map(attrgetter("start"), words), np.int64, n_words)
    word_ends = np.fromiter(map(attrgetter("end"), words), np.int64, n_words)
    first_tok = offsets[:, 1].searchsorted(word_starts, side="right")  # first token ending after word start
    last_tok = offsets[:, 0].searchsorted(word_ends, side="left")  # one past the last token starting before end
    first = first_tok[bounds[:, 0]]
    starts = np.minimum(first, n_tokens - 1)
    ends = np.minimum(np.maximum(last_tok[bounds[:, 1] - 1], first + 1), n_tokens)
    if n_tokens <= _MASK_TOKENS:
        position = np.arange(n_tokens)
        sums = ((position >= starts[:, None]) & (position < ends[:, None])).astype(tokens.dtype) @ tokens
    else:
        cumulative = np.concatenate([np.zeros((1, tokens.shape[1]), tokens.dtype), np.cumsum(tokens, axis=0)])
        sums = cumulative[ends] - cumulative[starts]
    squared = np.einsum("ij,ij->i", sums, sums)
    along = None
    if topic is not None:
        along = sums @ topic
        squared -= along * along  # |s - (s.t) t|^2 for a unit t
        np.maximum(squared, 0.0, out=squared)
    norms = np.sqrt(squared)
    norms[norms == 0] = 1.0
    return sums, along, np.divide(1.0, norms, dtype=np.float32)


_MASK_TOKENS = 256  # up to this many tokens span sums are a mask product (measured faster than prefix sums)
