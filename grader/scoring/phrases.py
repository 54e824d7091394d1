"""Finding concepts (key phrases, misconceptions, reference sentences) in an answer.

A concept is matched two ways and the stronger wins:

* lexically: the share of its content-word stems that one sentence of the answer
  states outside a negation scope;
* semantically: cosine similarity between the concept's vector and the vectors of
  the answer's spans (clauses, sentences and 3-, 5- and 8-word windows), pooled
  from the token vectors of the answer's single forward pass.

A span whose content words sit mostly inside a negation scope ("does not update
its state additively") cannot state the concept.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate, chain
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from grader.encoding.embedder import Encoding
from grader.text import Analysis, analyze

WINDOW_SIZES = (3, 5, 8)
MAX_SPANS = 600  # long answers get sparser windows, never unbounded work
# Cosine similarity between a concept and a span, mapped linearly onto strength [0, 1].
SEMANTIC_FLOOR = 0.40
SEMANTIC_CEIL = 0.78
SPAN_SHARE = 0.6  # a span needs this share of a phrasing's content words to match it at full strength
FOUND = 0.5  # strength from which a concept counts as stated
PARTIAL = 0.3  # strength from which it counts as half-stated


@dataclass(frozen=True)
class Target:
    """A concept prepared once per rubric: its phrasings, their vectors and stems."""

    key: str
    texts: tuple[str, ...]
    vectors: np.ndarray  # (len(texts), dim), unit length
    stems: tuple[frozenset[str], ...]
    counter: np.ndarray | None = None  # unit vectors of sentences an instructor marked as not stating it


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

    @classmethod
    def of(cls, targets) -> "TargetSet":
        targets = tuple(targets)
        widths = [len(t.vectors) for t in targets]
        dim = next((t.vectors.shape[1] for t in targets if t.vectors.ndim == 2), 0)
        matrix = np.concatenate([t.vectors for t in targets]) if targets else np.zeros((0, dim), np.float32)
        return cls(targets, matrix, np.cumsum([0, *widths[:-1]]).astype(np.int64),
                   _needed([st for t in targets for st in t.stems]), bool(targets) and min(widths) > 0)

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self):
        return iter(self.targets)


def _needed(stems: list[frozenset]) -> np.ndarray:
    """Content words a span needs to state each phrasing at full strength (a share of the phrasing's)."""
    return np.array([max(1.0, SPAN_SHARE * len(st)) for st in stems])


def content_stem_set(analysis: Analysis) -> frozenset[str]:
    """Content stems of an analysed text."""
    return frozenset(analysis.content_stems())


def make_targets(keys, phrasings, vectors: np.ndarray, language: str, counter=None) -> list[Target]:
    """Targets from parallel lists of keys and phrasing tuples, with their vectors in one flat array.

    ``counter`` (optional, parallel to ``keys``) holds each target's counter-example vectors.
    """
    targets, row = [], 0
    for k, (key, texts) in enumerate(zip(keys, phrasings)):
        n = len(texts)
        stems = tuple(content_stem_set(analyze(t, language)) for t in texts)
        against = counter[k] if counter is not None and len(counter[k]) else None
        targets.append(Target(key, tuple(texts), vectors[row : row + n], stems, against))
        row += n
    return targets


class AnswerSpans:
    """The spans of one answer with their pooled vectors and negation marks."""

    def __init__(self, analysis: Analysis, encoding: Encoding, topic: np.ndarray | None = None):
        """``topic``: a unit direction (the question's) removed from every span vector."""
        self.analysis = analysis
        words = analysis.words
        content = analysis.content
        # Per-span counts from prefix sums: O(1) per span however many spans a long answer has.
        content_prefix = [0, *accumulate(content)]
        self.ranges = _span_ranges(analysis, content_prefix)
        bounds = np.fromiter(chain.from_iterable(self.ranges), np.int64, 2 * len(self.ranges)).reshape(-1, 2)
        self._topic = topic
        self._sums, self._along, self._inverse_norms = _pool(words, encoding, bounds, topic)
        content_sum = np.array(content_prefix)
        self.span_content = (content_sum[bounds[:, 1]] - content_sum[bounds[:, 0]]).astype(np.float32)
        if any(analysis.negated):
            negated_content = [c and n for c, n in zip(content, analysis.negated)]
            negated_sum = np.array([0, *accumulate(negated_content)])
            negated_spans = negated_sum[bounds[:, 1]] - negated_sum[bounds[:, 0]]
            # A span is negated when most of its content words sit inside a negation scope.
            self.negated = (self.span_content > 0) & (negated_spans >= 0.5 * self.span_content)
            asserted = [c and not n for c, n in zip(content, negated_content)]
            self.negated_stems = frozenset(w.stem for w, n in zip(words, negated_content) if n)
        else:  # most answers negate nothing
            self.negated = np.zeros(len(bounds), dtype=bool)
            asserted = content
            self.negated_stems = frozenset()
        self.any_negated = bool(self.negated.any())
        self.sentence_stems = [frozenset(words[i].stem for i in range(s, e) if asserted[i])
                               for s, e in analysis.sentences]

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
                out.append(self.match(t, sims[:, col : col + w]))
                col += w
            return out
        strength, negated_hit = self._semantic(sims, targets.needed, targets.starts)
        best_span = strength.argmax(axis=0)
        return [self._finish(t, float(strength[best_span[k], k]), int(best_span[k]), bool(negated_hit[k]))
                for k, t in enumerate(targets)]

    def strengths(self, targets: TargetSet, sims: np.ndarray | None = None) -> list[float]:
        """The strength of each target's best match, as :meth:`match_all` gives it, without the matches.

        For targets only counted, never shown (reference sentences): no evidence text is cut.
        """
        if not targets.complete or not self.ranges:
            return [m.strength for m in self.match_all(targets, sims)]
        if sims is None:
            sims = self.similarities(targets.matrix)
        semantic_best = self._semantic(sims, targets.needed, targets.starts)[0].max(axis=0).tolist()
        out = []
        for target, semantic in zip(targets, semantic_best):
            strength = round(semantic, 4) if semantic > 0 else 0.0
            lexical = self._lexical(target)[0]
            out.append(round(lexical, 4) if lexical > strength else strength)
        return out

    def match(self, target: Target, sims: np.ndarray | None = None) -> Match:
        """Best match of ``target`` in this answer; ``sims`` are its precomputed span similarities."""
        if not self.ranges:
            return NO_MATCH
        if sims is None:
            sims = self.similarities(target.vectors)
        if not sims.size:
            return self._finish(target, 0.0, 0, False)
        strength, negated_hit = self._semantic(sims, _needed(list(target.stems)), np.array([0]))
        i = int(strength[:, 0].argmax())
        return self._finish(target, float(strength[i, 0]), i, bool(negated_hit[0]))

    def _semantic(self, sims: np.ndarray, needed: np.ndarray, starts: np.ndarray):
        """(span x target strengths with negated spans zeroed, whether a negated span states each target).

        Columns of ``sims`` are phrasings, ``needed`` their content words for full strength
        (:func:`_needed`); ``starts`` gives each target's first column.
        """
        # A span much shorter than a phrasing cannot state all of it.
        sims = sims * np.minimum(1.0, self.span_content[:, None] / needed[None, :])
        per_span = np.maximum.reduceat(sims, starts, axis=1)
        strength = (per_span - SEMANTIC_FLOOR) / (SEMANTIC_CEIL - SEMANTIC_FLOOR)
        np.maximum(strength, 0.0, out=strength)  # np.clip's wrapper costs more than the two passes
        np.minimum(strength, 1.0, out=strength)
        if not self.any_negated:
            return strength, np.zeros(strength.shape[1], dtype=bool)
        negated_hit = (strength[self.negated] >= FOUND).any(axis=0)
        strength[self.negated] = 0.0
        return strength, negated_hit

    def _finish(self, target: Target, semantic: float, span: int, negated_hit: bool) -> Match:
        """The stronger of the semantic and the lexical match, marked negated when only a negation states it.

        A match whose span is closer to one of the target's counter-examples than to any of its
        phrasings is no match: an instructor said that sentence does not state the concept.
        """
        best = self._make(semantic, self.ranges[span], "semantic") if semantic > 0 else NO_MATCH
        best_range = self.ranges[span] if semantic > 0 else None
        lexical, sentence = self._lexical(target)
        if lexical > best.strength:
            best = self._make(lexical, self.analysis.sentences[sentence], "lexical")
            best_range = self.analysis.sentences[sentence]
        if target.counter is not None and best.found and best_range is not None and self._vetoed(target, best_range):
            return NO_MATCH
        if not best.found:
            negated_hit = negated_hit or bool(self.negated_stems) and any(
                stems and len(stems & self.negated_stems) / len(stems) >= 0.6 for stems in target.stems
            )
            if negated_hit:
                best = Match(best.strength, best.evidence, best.start, best.end, best.method, True)
        return best

    def _vetoed(self, target: Target, word_range: tuple[int, int]) -> bool:
        """Whether the span ``word_range`` is closer to a counter-example of ``target`` than to any phrasing."""
        index = self._range_index.get(tuple(word_range))
        if index is None:
            return False
        row = slice(index, index + 1)
        against = float(self._row_similarities(row, target.counter).max())
        towards = float(self._row_similarities(row, target.vectors).max()) if len(target.vectors) else -1.0
        return against > towards

    @property
    def _range_index(self) -> dict:
        if not hasattr(self, "_ranges_at"):
            self._ranges_at = {tuple(r): i for i, r in enumerate(self.ranges)}
        return self._ranges_at

    def _row_similarities(self, rows: slice, matrix: np.ndarray) -> np.ndarray:
        products = self._sums[rows] @ matrix.T
        if self._along is not None:
            products = products - np.outer(self._along[rows], matrix @ self._topic)
        return products * self._inverse_norms[rows, None]

    def _lexical(self, target: Target) -> tuple[float, int]:
        best, where = 0.0, 0
        for stems in target.stems:
            if not stems:
                continue
            for k, sentence in enumerate(self.sentence_stems):
                share = len(stems & sentence) / len(stems)
                # Matching one word of a long phrase is weak evidence; all of them is full evidence.
                score = share**1.5 if len(stems) > 1 else share
                if score > best:
                    best, where = score, k
        return best, where

    def _make(self, strength: float, word_range: tuple[int, int], method: str) -> Match:
        s, e = word_range
        words = self.analysis.words
        return Match(round(strength, 4), self.analysis.span_text(s, e), words[s].start, words[e - 1].end, method,
                     False)


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
