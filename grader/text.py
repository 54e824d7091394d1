"""Text handling shared by every signal: words with offsets, stems, sentences, negation scopes."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Sequence

import snowballstemmer

# "non-competitive", "non competitive": one word, not "competitive" (the other side of "competitive and
# non-competitive inhibitors"); its norm and stem join the prefix to the word ("noncompetitive").
_WORD = re.compile(r"(?:\b[Nn][Oo][Nn](?:-|[ \t]+)(?=[^\W\d_]{3}))?[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_NON_PREFIX = re.compile(r"non(?:-|[ \t]+)", re.IGNORECASE)
# a sentence ends at a full stop (or "?", "!", ";", ":") before a space, and at any line break: terse notes put one
# statement on each line, bullets and numbered items included
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\s*\n\s*")
# The word boundary is factored out of the alternatives: three times faster, the same matches.
_CLAUSE_BREAK = re.compile(r",|\b(?:but|whereas|while|however|aber|während|jedoch)\b", re.I)

# Not "same": "the same current flows through every resistor" is what a concept claims.
STOPWORDS = {
    "en": frozenset(
        """a an the and or of to in on at by for with from as is are was were be been being it its this that
        these those there their they them he she we you i his her our your my me us which who whom what when where
        why how than then so such can could would should will shall may might must do does did has have had having
        into onto over under about between through during before after above below up down out off again further
        once here all any both each few more most other some own only very s t just also if because while
        until against""".split()
    ),
    "de": frozenset(
        """der die das den dem des ein eine einer eines einem einen und oder zu im in am an auf mit von vom zum zur
        für ist sind war waren wird werden wurde wurden sein es er sie wir ihr ich du man sich als auch wie so dass
        daß bei aus um nach über unter vor durch noch nur schon dann wenn weil ob dieser diese dieses diesem diesen
        jeder jede jedes was wer wo hat haben hatte hatten kann können muss müssen soll sollen bzw dabei dazu
        damit""".split()
    ),
}

NEGATION_CUES = {
    "en": frozenset(
        """not no never none nobody nothing neither nor cannot can't cant don't dont doesn't doesnt didn't didnt
        isn't isnt aren't arent wasn't wasnt weren't werent won't wont wouldn't wouldnt shouldn't shouldnt
        couldn't couldnt hasn't hasnt haven't havent hadn't hadnt without lacks lack instead""".split()
    ),
    "de": frozenset("nicht kein keine keinen keinem keiner keines nie niemals ohne weder statt anstatt".split()),
}
# Two-word cues ("rather than X", "instead of X") negate what follows them.
_NEGATION_BIGRAMS = {("rather", "than"), ("instead", "of"), ("as", "opposed"), ("no", "longer")}
_BIGRAM_FIRST = frozenset(a for a, _ in _NEGATION_BIGRAMS)
# A cue before these words qualifies an amount or adds to a claim, it negates nothing: "not enough parameters"
# says there are too few, "not only X but Y" says X and Y.
_NOT_NEGATING_NEXT = frozenset("only just enough much many merely nur genug".split())
# ... or the word after next: "they don't have enough parameters" says they have too few.
_NOT_NEGATING_AFTER_NEXT = frozenset("enough genug".split())
# "Nothing" after these words is an amount something comes to, it denies nothing: "it fades to nothing or
# blows up" says the gradient blows up.
_AMOUNT_AFTER = frozenset("to into".split())
NEGATION_SCOPE = 5  # words after a cue that it negates, within its clause
# "without", "no", "lack" deny the thing they name, not what the clause goes on to say after "and": "without
# oxygen and makes lactic acid", "viruses lack these structures and replicate inside the host's cells" ("no X or
# Y" denies both).
_NAMES_ONLY = frozenset("without lack lacks lacking no ohne kein keine keinen keinem keiner".split())
_AND = frozenset("and und".split())
# What a denial may cover (Analysis.denied) runs on to its clause's end, but not past a bracket or these words,
# which open a clause of their own: "more parameters (4 matrices instead of one) which gives it capacity" asserts
# the capacity.
_DENIAL_ENDS = frozenset("which who whom whose where when so and or then thus therefore hence welche welcher welches "
                         "und oder also".split())
# In a negation's scope, "because"/"since" and a clause give the reason for what is denied (asserted, so the
# scope ends there); "because of"/"due to" and a noun name a cause, and that cause is what is denied, as is
# the reason of "not because X" and of "... because X, but because Y".
_REASON = frozenset("because since weil".split())
_REASON_OF = frozenset({"of"})
_CAUSE_PAIRS = frozenset({("due", "to"), ("owing", "to"), ("wegen", "der"), ("wegen", "des")})
# "It is not true that X, Y and Z", "It isn't that X", "it is not what X": everything after the cue, to the end
# of the sentence, is negated; "it's not that hard" only qualifies a word.
_DEGREE = "hard|easy|simple|different|important|much|many|big|bad|good|complicated|difficult|clear|obvious"
_SENTENCE_NEGATION = re.compile(
    r"\b(?:it\s+is|it's|that\s+is|this\s+is)\s+(?:not\s+(?:true|the\s+case|correct|right)|false|wrong|untrue|"
    r"incorrect|a\s+myth)\s+(?:that\b)?"
    r"|\b(?:it\s+is\s+not|it's\s+not|it\s+isn'?t|it\s+was\s+not|it\s+wasn'?t)\s+(?:that|what)\b"
    r"(?!\s+(?:" + _DEGREE + r")\b)"
    r"|\b(?:es\s+)?(?:ist|stimmt)\s+(?:nicht\s+(?:wahr|richtig|so)|nicht|falsch)\s*,?\s*dass\b",
    re.IGNORECASE)
# "Some people think X", "a common misconception is that X": X is a view the answer reports, not one it holds.
# Everything after the cue, to the end of its clause ("..., but it doesn't"), is read as denied.
_REPORTED_VIEW = re.compile(
    r"\b(?:(?:(?:some|many|most|a\s+lot\s+of)\s+)?(?:people|students|learners|others)"
    r"|(?:one|you|someone)\s+(?:might|may|could|would))\s+"
    r"(?:(?:often|sometimes|wrongly|mistakenly|commonly|usually|still)\s+)?(?:think|believe|assume|claim|say)s?\b"
    r"(?:\s+that\b)?"
    r"|\bit\s+is\s+(?:(?:often|commonly|widely|sometimes|wrongly)\s+)?(?:thought|believed|assumed|claimed)\s+that\b"
    r"|\ba\s+(?:common|popular|widespread)\s+(?:misconception|mistake|myth|error|belief)\s+is\s+(?:that\b)?",
    re.IGNORECASE)
_REPORTED_VIEW_WORDS = ("think", "believe", "assume", "claim", "say", "thought", "misconception", "mistake", "myth",
                        "error", "belief")
# Every match of _SENTENCE_NEGATION holds one of these. On ASCII text (where IGNORECASE means
# ASCII case only) a text holding none of them, lower-cased, cannot match, and the regex is skipped.
_SENTENCE_NEGATION_WORDS = ("not", "n't", "isnt", "wasnt", "false", "wrong", "untrue", "incorrect", "myth", "dass")

_STEMMERS = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "nl": "dutch"}


class Word(NamedTuple):
    """A word of a text with its character span.

    A named tuple: analyze makes one per word, and a frozen dataclass costs five times as much to make.
    """

    text: str
    start: int
    end: int
    norm: str
    stem: str


@dataclass(frozen=True)
class Analysis:
    """Everything the signals need from one text, computed once."""

    text: str
    language: str
    words: tuple[Word, ...]
    sentences: tuple[tuple[int, int], ...]  # word-index ranges [start, end)
    clauses: tuple[tuple[int, int], ...]
    negated: tuple[bool, ...]  # per word: inside a negation scope
    content: tuple[bool, ...]  # per word: a content word (no stop word, more than one letter)
    # per word: negated, or after a cue in its clause beyond NEGATION_SCOPE ("don't keep a list of all their past
    # hidden states"): what a denial may cover, for claims a grader must not ascribe to a student who denied them
    denied: tuple[bool, ...] = ()

    @property
    def stems(self) -> list[str]:
        return [w.stem for w in self.words]

    def content_stems(self) -> set[str]:
        return {w.stem for w, c in zip(self.words, self.content) if c}

    def span_text(self, start: int, end: int) -> str:
        """The original characters covering words [start, end)."""
        if start >= end:
            return ""
        return self.text[self.words[start].start : self.words[end - 1].end]


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` as valid Unicode: every surrogate code point replaced by U+FFFD.

    JSON (``"\\ud800"``) and YAML escapes can put lone surrogates in a Python string; the
    tokenizer, UTF-8 output and JSON bodies all refuse them. One character for one keeps every
    offset into the text; valid text is returned as is.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def normalize(text: str) -> str:
    """NFKC, lower case, whitespace collapsed: the key for deduplicating answers."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@lru_cache(maxsize=16)
def _stemmer(language: str):
    return snowballstemmer.stemmer(_STEMMERS.get(language, "english"))


@lru_cache(maxsize=200_000)
def stem(word: str, language: str = "en") -> str:
    """Snowball stem of a normalised word."""
    return _stemmer(language).stemWord(word)


_NORM_STEMS: dict[str, dict[str, tuple[str, str]]] = {}  # language -> token -> (norm, stem)
_NORM_STEMS_SIZE = 200_000


def _norm_stems(language: str) -> dict[str, tuple[str, str]]:
    """The cache of :func:`_norm_stem` for ``language``: a plain dict, looked up once per word."""
    cache = _NORM_STEMS.get(language)
    if cache is None:
        cache = _NORM_STEMS.setdefault(language, {})
    if len(cache) >= _NORM_STEMS_SIZE:  # bounded: a stream of random tokens cannot grow it without end
        cache.clear()
    return cache


def _norm_stem(token: str, language: str) -> tuple[str, str]:
    """A token's normalised form (NFKC, case-folded, straight apostrophe) and its stem."""
    prefix = _NON_PREFIX.match(token)
    if prefix is not None:
        norm, stemmed = _norm_stem(token[prefix.end():], language)
        return "non" + norm, "non" + stemmed
    norm = unicodedata.normalize("NFKC", token).casefold().replace("’", "'")
    return norm, stem(norm, language)


def detect_language(text: str, default: str = "en") -> str:
    """'en' or 'de' by stop-word counts; ``default`` when the text gives no evidence."""
    words = [w.casefold() for w in _WORD.findall(text[:5000])]
    en = sum(w in STOPWORDS["en"] for w in words)
    de = sum(w in STOPWORDS["de"] for w in words) + 2 * sum(ch in "äöüß" for ch in text[:5000].casefold())
    if en == de:
        return default
    return "en" if en > de else "de"


def _ranges(text: str, words: Sequence[Word], pattern: re.Pattern, offset: int = 0) -> list[tuple[int, int]]:
    """Word-index ranges of the pieces of ``text`` split at ``pattern``; ``text`` starts at ``offset`` of the words'."""
    # a joining word ("but", "while") opens the piece after it rather than making one of its own
    cuts = sorted({b + offset for m in pattern.finditer(text)
                   for b in ((m.start(),) if m.group()[:1].isalpha() else (m.start(), m.end()))})
    ranges, start_word = [], 0
    boundaries = iter(cuts)
    cut = next(boundaries, None)
    for i, w in enumerate(words):
        while cut is not None and cut <= w.start:
            if i > start_word:
                ranges.append((start_word, i))
                start_word = i
            cut = next(boundaries, None)
    if start_word < len(words):
        ranges.append((start_word, len(words)))
    return ranges


def analyze(text: str, language: str = "en") -> Analysis:
    """Split ``text`` into words, sentences and clauses and mark negated words."""
    cache = _norm_stems(language)
    words = []
    for m in _WORD.finditer(text):
        token = m.group()
        norm_stem = cache.get(token)
        if norm_stem is None:
            norm_stem = cache[token] = _norm_stem(token, language)
        start, end = m.span()
        words.append(Word(token, start, end, norm_stem[0], norm_stem[1]))
    sentences = _ranges(text, words, _SENTENCE_END) or ([(0, len(words))] if words else [])
    clauses = []
    for s, e in sentences:
        sub = _ranges(text[words[s].start : words[e - 1].end], words[s:e], _CLAUSE_BREAK, words[s].start)
        clauses.extend((s + a, s + b) for a, b in sub)
    norms = [w.norm for w in words]
    negated = [False] * len(words)
    denied = negated
    cues = NEGATION_CUES.get(language, NEGATION_CUES["en"])
    if not (cues.isdisjoint(norms) and _BIGRAM_FIRST.isdisjoint(norms)):  # most answers hold no cue
        denied = [False] * len(words)
        sentence_end = [0] * len(words)
        for s, e in sentences:
            sentence_end[s:e] = [e] * (e - s)
        for cs, ce in clauses:
            for i in range(cs, ce):
                norm = norms[i]
                bigram = norm in _BIGRAM_FIRST and i + 1 < ce and (norm, norms[i + 1]) in _NEGATION_BIGRAMS
                if (bigram or norm in cues) and not (i + 1 < ce and norms[i + 1] in _NOT_NEGATING_NEXT) \
                        and not (i + 2 < ce and norms[i + 2] in _NOT_NEGATING_AFTER_NEXT) \
                        and not (norm == "nothing" and i > cs and norms[i - 1] in _AMOUNT_AFTER):
                    first = i + (2 if bigram else 1)
                    # a bracket ends what a cue negates: "(4 matrices instead of one) which gives it capacity"
                    bracket = next((j for j in range(first + 1, ce)
                                    if any(ch in "()[];:" for ch in text[words[j - 1].end : words[j].start])), ce)
                    last = min(bracket, first + NEGATION_SCOPE)
                    if norm in _NAMES_ONLY:
                        last = next((j for j in range(first + 1, last) if norms[j] in _AND), last)
                    # "instead of X", "rather than X": X alone is what is contrasted
                    wide = last if bigram else next((j for j in range(first + 1, bracket)
                                                     if norms[j] in _DENIAL_ENDS), bracket)
                    for j in range(first, ce):
                        if norms[j] in _REASON and j > first and not (j + 1 < ce and norms[j + 1] in _REASON_OF) \
                                and not _but_because(norms, j, sentence_end[i]):
                            # "does not vanish because the cell adds": the reason is asserted
                            last, wide = min(last, j), min(wide, j)
                            break
                        if norms[j] in _REASON or (norms[j], norms[j + 1] if j + 1 < ce else "") in _CAUSE_PAIRS:
                            if j < last:
                                last = ce  # "does not slow down because of the CPU": the cause is what is denied
                            break
                    for j in range(first, last):
                        negated[j] = True
                    for j in range(first, wide):
                        denied[j] = True
    for s, e in sentences if may_match(text, _SENTENCE_NEGATION_WORDS) else ():
        start, end = words[s].start, words[e - 1].end
        for m in _SENTENCE_NEGATION.finditer(text, start, end):
            for j in range(s, e):
                if words[j].start >= m.end():
                    negated[j] = True
    for cs, ce in clauses if language == "en" and may_match(text, _REPORTED_VIEW_WORDS) else ():
        for m in _REPORTED_VIEW.finditer(text, words[cs].start, words[ce - 1].end):
            for j in range(cs, ce):
                if words[j].start >= m.end():
                    negated[j] = True
    stop = STOPWORDS.get(language, STOPWORDS["en"])
    content = tuple(n not in stop and len(n) > 1 for n in norms)
    denied = tuple(d or n for d, n in zip(denied, negated))
    return Analysis(text, language, tuple(words), tuple(sentences), tuple(clauses), tuple(negated), content, denied)


def _but_because(norms: list[str], start: int, end: int) -> bool:
    """Whether "but because" (or "but rather", "but due to", "sondern weil") follows word ``start`` in its
    sentence (ending at ``end``): "not because it has more parameters, but because ..." denies the first reason."""
    return any(norms[k] in ("but", "sondern") and norms[k + 1] in ("because", "rather", "due", "since", "weil")
               for k in range(start + 1, end - 1))


def may_match(text: str, needles: Sequence[str]) -> bool:
    """False only when a case-insensitive regex whose every match holds one of ``needles`` cannot match ``text``.

    A cheap test before a slow regex: for ASCII text, whether any needle occurs in it
    lower-cased. Other text always answers True, since IGNORECASE also folds non-ASCII
    letters onto ASCII ones (the Kelvin sign onto k).
    """
    if not text.isascii():
        return True
    lower = text.lower()
    return any(n in lower for n in needles)


def content_stems(text: str, language: str = "en") -> set[str]:
    """Stems of the content words of ``text`` (stop words and single letters removed)."""
    return analyze(text, language).content_stems()
