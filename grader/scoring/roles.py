"""Who a statement is about, and which words reverse it: roles, contrasts and reversals.

A question that contrasts two things ("why do LSTMs keep long-range memory, and why does
the vanilla RNN fail?") has concepts that are true of one of them only. The words of a
concept stated about the *other* one are a reversal, not a statement of it. This module
finds, without any subject-specific word list:

* the **entities** a question contrasts: the two sides of a comparison ("the difference
  between X and Y", "X vs Y", "compare X and Y", "how does X differ from Y"), else the
  acronyms and other all-capital names its prompt uses (two or more of them, or there is
  nothing to contrast);
* the **role** of every word of a text: the entity its clause names, or else the one the
  text last named (a clause that names several entities is about all of them);
* the **contrast pairs** of the reference answers: "X rather than Y", "X instead of Y",
  "X, not Y" put two words in opposition that a concept may hold one side of;
* the **numbers** of a concept ("near 1"), which a span contradicts when it gives another
  number in the same place ("near 0").
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from grader.text import STOPWORDS, Analysis, stem

NO_ROLE = -1  # a word (or a concept) about no entity in particular
ALL_ROLES = -2  # a word of a clause that names several entities
ROOT = 6  # leading characters of a stem that identify a word family ("multip" for multiply, multiplicative)
_ACRONYM = re.compile(r"^[A-Z][A-Z0-9-]*[A-Z0-9](?:s|es)?$")
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "twice": "2", "double": "2", "half": "0.5",
                 "null": "0", "eins": "1", "eine": "1", "zwei": "2", "drei": "3", "vier": "4", "fünf": "5",
                 "doppelt": "2", "halb": "0.5", "hälfte": "0.5"}
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)?$")
# "X rather than Y", "X instead of Y", "X as opposed to Y", "X not Y", "X but not Y": X is asserted, Y denied.
# A bare "not" opposes two words only after a comma ("added, not overwritten").
_CONTRAST_CUES = (("rather", "than"), ("instead", "of"), ("as", "opposed", "to"), ("not",), ("but", "not"),
                  ("statt",), ("anstatt",), ("nicht",))
_AFTER_COMMA = frozenset({("not",), ("nicht",)})


# Stems that name one of a few operations in other words, and the family they belong to: "summed"
# states "additive", "a product of matrices" states "multiplied", a "valve" is a gate. Only words
# whose everyday sense is the operation itself are here ("times" also means "occasions", so not it).
SAME_OPERATION = {
    "add": "addit", "sum": "addit", "summat": "addit", "plus": "addit", "increment": "addit",
    "summ": "addit", "summiert": "addit", "addiert": "addit", "addit": "addit",
    "product": "multip", "produkt": "multip", "scale": "multip",
    "repeat": "recurr", "recur": "recurr", "iter": "recurr", "iterat": "recurr", "wiederholt": "recurr",
    "valv": "gate", "ventil": "gate",
}
# Words that say an operation recurs without naming it ("at every step", "again and again"): they
# state the family of "recurrence" and "repeated".
REPEATED = re.compile(r"\b(?:again\s+and\s+again|over\s+and\s+over|(?:at\s+)?(?:each|every)\s+(?:single\s+)?"
                      r"(?:time[\s-]?step|step|iteration)s?|step\s+after\s+step|immer\s+wieder|"
                      r"(?:in\s+)?jede[mn]?\s+(?:zeit)?schritt)\b", re.IGNORECASE)
REPEATED_ROOT = "recurr"
# Verbs whose particle or complement carries their meaning ("used up" is consumed, not used; "stays the same" is
# unchanged): the verb takes the family of the word it means, so it is a word of its own rather than a light verb.
PARTICLE_VERBS = ((re.compile(r"\b(?:use[sd]?|using)\s+(?:it\s+|them\s+|some\s+of\s+it\s+)?up\b", re.IGNORECASE),
                   "consum"),
                  # "stays the same", "remains intact": unchanged
                  (re.compile(r"\b(?:stay|stays|stayed|staying|remain|remains|remained|remaining)\s+(?:exactly\s+)?"
                              r"(?:the\s+same|unchanged|intact|untouched)\b", re.IGNORECASE), "unchan"))


def families(analysis: Analysis, particles: dict[int, str] | None = None) -> list[str]:
    """The word family of each word of ``analysis`` (:func:`root`); the words of a phrase that says an
    operation recurs ("at every time step") all belong to the family of "recurrence", and a particle verb
    to the family it means (``particles``, :func:`particle_families`, worked out here when not given)."""
    out = [root(w.stem) for w in analysis.words]
    for i in matched_words(REPEATED, analysis):
        out[i] = REPEATED_ROOT
    for i, family in (particle_families(analysis) if particles is None else particles).items():
        out[i] = family
    return out


def matched_words(pattern: re.Pattern, analysis: Analysis) -> list[int]:
    """Indices of the words of ``analysis`` that start inside a match of ``pattern``."""
    starts = [w.start for w in analysis.words]
    return [i for m in pattern.finditer(analysis.text)
            for i in range(bisect_left(starts, m.start()), bisect_left(starts, m.end()))]


def particle_families(analysis: Analysis) -> dict[int, str]:
    """Word index -> family of the verbs of :data:`PARTICLE_VERBS` in ``analysis``: the first word of a match."""
    starts = [w.start for w in analysis.words]
    out = {}
    for pattern, family in PARTICLE_VERBS:
        for m in pattern.finditer(analysis.text):
            i = bisect_left(starts, m.start())
            if i < len(starts) and starts[i] == m.start():
                out[i] = family
    return out


def root(stem: str) -> str:
    """The word family of a stem: its first ``ROOT`` characters, or the operation it names
    (:data:`SAME_OPERATION`)."""
    return SAME_OPERATION.get(stem) or stem[:ROOT]


def in_family(word_root: str, roots: frozenset[str]) -> bool:
    """Whether ``word_root`` belongs to one of the word families ``roots``: the same root, or a short
    verb a longer root derives from ("add" of "addit", additive; "sum" of "summat", summation)."""
    if word_root in roots:
        return True
    return len(word_root) >= 3 and len(word_root) < ROOT and any(r.startswith(word_root) for r in roots)


# Words that make a prompt a comparison, and the words that join the two things compared.
_COMPARE = frozenset("""compare compared comparing contrast contrasting difference differences differ differs
    different distinguish distinguishes versus vs between unterschied unterscheiden unterscheidet vergleiche
    vergleichen zwischen""".split())
_JOIN = frozenset("and or with from to vs versus und oder mit von".split())
_ALWAYS_JOIN = frozenset({"vs", "versus"})
# Words that join two statements about different entities within one clause (:func:`_coordinated`).
_COORDINATORS = frozenset("and but while whereas whilst or und aber während wohingegen oder".split())
# Words that open a clause standing on its own within a sentence (:func:`_resting_on`).
_PART_START = (_COORDINATORS - {"or", "oder"}) | {"however", "jedoch"}  # "X, or Y" asserts neither
# First words of a sentence that goes on about what the one before was about ("Because the cell state ...").
_GOES_ON = frozenset("""it its they their them this these that those because so thus therefore hence then since also
    and but here there which as es sie dies diese dieser dieses dadurch deshalb daher denn weil und aber""".split())
_SIDE_WORDS = 3  # content words of one side of a comparison ("supervised learning") at most


def entities(prompt: Analysis) -> tuple[str, ...]:
    """Keys of the names a prompt contrasts, in order of first use.

    A comparison ("the difference between mitosis and meiosis", "TCP vs UDP", "compare a
    stack and a queue", "how does X differ from Y") names its two sides; otherwise the prompt's
    all-capital words (acronyms) are the names. Fewer than two: the question contrasts nothing,
    and no role is read.
    """
    compared = _compared(prompt)
    if compared:
        return compared
    found: list[str] = []
    for w in prompt.words:
        if _ACRONYM.match(w.text) and sum(c.isupper() for c in w.text) >= 2:
            key = _entity_key(w.norm)
            if key not in found:
                found.append(key)
    return tuple(found) if len(found) >= 2 else ()


def _compared(prompt: Analysis) -> tuple[str, ...]:
    """The two things a comparison prompt names: the first word that tells one side from the other."""
    words, norms = prompt.words, [w.norm for w in prompt.words]
    seen_compare = False
    for j, n in enumerate(norms):
        seen_compare = seen_compare or n in _COMPARE
        # "competitive and non-competitive inhibitors" contrasts its sides without a word of comparison
        opposed = 0 < j < len(norms) - 1 and n in _JOIN and norms[j + 1] == "non" + norms[j - 1]
        if not (n in _ALWAYS_JOIN or (seen_compare and n in _JOIN) or opposed) or j == 0:
            continue
        if _PUNCTUATION.search(prompt.text[words[j - 1].end : words[j].start]):
            continue  # ", and why ...": a join of clauses, not of two things
        left = _side(prompt, range(j - 1, -1, -1))[::-1]
        right = _side(prompt, range(j + 1, len(words)))
        x = [k for k in left if k[0] not in dict(right)]
        y = [k for k in right if k[0] not in dict(left)]
        if x and y:
            # Sides that share their words ("resistors connected in series compared with resistors connected in
            # parallel") are read on through function words, and differ where they differ.
            left_on = _side(prompt, range(j - 1, -1, -1), through=True)[::-1]
            right_on = _side(prompt, range(j + 1, len(words)), through=True)
            if y[0][0] in dict(left_on) or x[0][0] in dict(right_on):
                x_on = [k for k in left_on if k[0] not in dict(right_on)]
                y_on = [k for k in right_on if k[0] not in dict(left_on)]
                x, y = (x_on, y_on) if x_on and y_on else (x, y)
            # The first word that differs ("supervised" of "supervised learning"), an acronym before others, and
            # one the prompt uses nowhere else before one it does ("avoidance" of "congestion avoidance", beside
            # "TCP's congestion window").
            uses = Counter(_entity_key(w.norm) for w, c in zip(words, prompt.content) if c)
            if len(x) == 1 and len(y) > 1 and not x[0][1]:
                # one word against several: the words after the first are both sides' head ("recursive and
                # iterative DNS resolution"), and the first is the side's name, however the others read
                return x[0][0], y[0][0]
            # The left side is read from the join outwards too: "passing an argument by value" is "value".
            return tuple(next((k for k, upper in side if upper), None)
                         or next((k for k, _ in side if uses[k] == 1), side[0][0]) for side in (x[::-1], y))
    return ()


def _side(prompt: Analysis, order: range, through: bool = False) -> list[tuple[str, bool]]:
    """(key, is an acronym) of the content words of one side of a comparison, read from the join outwards:
    up to two leading function or comparison words skipped ("a", "the"), then up to ``_SIDE_WORDS``
    content words, up to a function word or a punctuation mark (``through``: up to a comparison or joining
    word or a punctuation mark, function words skipped)."""
    words, text = prompt.words, prompt.text
    out: list[tuple[str, bool]] = []
    prev, skipped = None, 0
    for i in order:
        w = words[i]
        if prev is not None:
            a, b = sorted((prev, i))
            if _PUNCTUATION.search(text[words[a].end : words[b].start]):  # a comma or other mark ends the side
                break
        prev = i
        if not prompt.content[i] or w.norm in _COMPARE or w.norm in _JOIN or number_of(w.norm) is not None:
            skipped += 1
            if through and out and not (w.norm in _COMPARE or w.norm in _JOIN):
                continue
            if out or skipped > 2:
                break
            continue
        out.append((_entity_key(w.norm), bool(_ACRONYM.match(w.text)) and sum(c.isupper() for c in w.text) >= 2))
        if len(out) >= _SIDE_WORDS:
            break
    return out


_PUNCTUATION = re.compile(r"[^\s\-'\".]")  # anything between two words but spaces, hyphens, quotes, a full stop


def _entity_key(norm: str) -> str:
    """"lstms", "lstm's" and "lstm", "queues" and "queue", "rnns" and "rnn": one key."""
    norm = norm.removesuffix("'s").removesuffix("’s")
    if len(norm) >= 5 and norm.endswith(("sses", "xes", "zes", "ches", "shes")):
        return norm[:-2]  # "classes", "boxes", "patches"
    if len(norm) >= 3 and norm.endswith("s") and not norm.endswith(("ss", "is", "us")):
        return norm[:-1]  # "queues", "lstms"; "mitosis", "virus" are singular
    return norm


# Words after which an entity is what the clause measures its subject against, not its subject: "the LSTM has
# more parameters than the RNN", "compared with the RNN", "mehr Parameter als das RNN", "unlike the RNN", "instead
# of being pushed through a matrix multiply like in the RNN".
_MEASURED_AGAINST = frozenset({("than",), ("compared", "to"), ("compared", "with"), ("in", "comparison", "to"),
                               ("in", "comparison", "with"), ("im", "vergleich", "zu"), ("verglichen", "mit"),
                               ("like",), ("unlike",), ("as", "in"), ("im", "gegensatz", "zu"), ("anders", "als")})
_COMPARATIVE_AS = frozenset({"mehr", "weniger", "besser", "schlechter", "größer", "kleiner", "länger", "kürzer"})
_MEASURED_GAP = 3  # words between the cue and the entity at most ("than a plain vanilla RNN")


def _measured_against(words, s: int, e: int) -> set[int]:
    """Indices of the words in clause [s, e) that follow a comparison cue closely: the object of a comparison.
    "rather than" is a contrast (:func:`contrast_pairs`), not a comparison; German "als" counts after a comparative."""
    out: set[int] = set()
    norms = [w.norm for w in words[s:e]]
    for i, norm in enumerate(norms):
        after = None
        for cue in _MEASURED_AGAINST:
            if tuple(norms[i : i + len(cue)]) == cue and not (cue == ("than",) and i and norms[i - 1] == "rather"):
                after = i + len(cue)
        if norm == "als" and any(n in _COMPARATIVE_AS for n in norms[max(0, i - 4) : i]):
            after = i + 1
        if after is not None:
            out.update(range(s + after, min(e, s + after + _MEASURED_GAP + 1)))
    return out


def word_roles(analysis: Analysis, names: tuple[str, ...], across_sentences: bool = True) -> np.ndarray:
    """The role of every word: the index of the entity its clause is about, ``NO_ROLE`` or ``ALL_ROLES``.

    A clause that names one entity is about it; one that names several is about all of them, unless
    all but one are what it compares against ("the LSTM has more parameters than the RNN" is about the
    LSTM); one that names none, or only what it compares against, continues the text's last named entity
    (before any: ``NO_ROLE``). Not ``across_sentences``: a sentence that names none and does not open with a
    word that goes on from the one before ("it", "because", ...) is about none.
    """
    roles = np.full(len(analysis.words), NO_ROLE, dtype=np.int64)
    if not names:
        return roles
    index = {n: i for i, n in enumerate(names)}
    # a clipped name ("ref" of "reference", "val" of "value") names the one entity it begins
    for j, w in enumerate(analysis.words):
        key = _entity_key(w.norm)
        if key not in index and analysis.content[j] and len(key) >= 3 and key.isalpha():
            longer = [n for n in names if n.startswith(key) and len(n) >= len(key) + 2]
            if len(longer) == 1:
                index[key] = index[longer[0]]
    current = NO_ROLE
    words = analysis.words
    starts = {s for s, _ in analysis.sentences}
    for s, e in analysis.clauses:
        if not across_sentences and s in starts and words[s].norm not in _GOES_ON:
            current = NO_ROLE
        found = [(j, index[k]) for j, k in enumerate((_entity_key(w.norm) for w in words[s:e]), start=s) if k in index]
        named = {role for _, role in found}
        if len(named) == 1 and _measured_against(words, s, e).issuperset(j for j, _ in found):
            named = set()  # "... like in the RNN": the clause goes on about the entity before it
        if len(named) > 1:
            against = _measured_against(words, s, e)
            subjects = {role for j, role in found if j not in against}
            if len(subjects) == 1:
                named = subjects
            else:
                parts = _coordinated(analysis, s, found)
                if parts is not None:  # "a stack pops the newest item and a queue the oldest"
                    for (start, role), (end, _) in zip(parts, [*parts[1:], (e, None)]):
                        roles[start:end] = role
                    current = parts[-1][1]
                    continue
        if len(named) == 1:
            current = named.pop()
        elif named:
            current = ALL_ROLES
        roles[s:e] = current
    return roles


def _coordinated(analysis: Analysis, s: int, found: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """[(first word, entity)] of the parts of a clause [s, ...) that says one thing of each of several entities,
    joined by a coordinator before each next entity's name ("the RNN multiplies by W and the LSTM adds to its
    cell"); None unless every part names one entity and says something of it (two content words besides)."""
    words, content = analysis.words, analysis.content
    parts = [(s, found[0][1])]
    last = found[0][0]
    for j, role in found[1:]:
        if role == parts[-1][1]:
            last = j
            continue
        cut = next((i for i in range(j - 1, last, -1) if words[i].norm in _COORDINATORS), None)
        if cut is None or sum(content[i] for i in range(last + 1, cut)) < 2:
            return None
        parts.append((cut, role))
        last = j
    return parts if len(parts) > 1 else None


def span_role_counts(roles: np.ndarray, n_entities: int, bounds: np.ndarray) -> np.ndarray:
    """(spans x entities) count of words about each entity in each span ([start, end) rows of ``bounds``)."""
    out = np.zeros((len(bounds), n_entities), dtype=np.int64)
    for e in range(n_entities):
        prefix = np.concatenate([[0], np.cumsum((roles == e) | (roles == ALL_ROLES))])
        out[:, e] = prefix[bounds[:, 1]] - prefix[bounds[:, 0]]
    return out


def text_role(analysis: Analysis, names: tuple[str, ...]) -> int:
    """The one entity a short text (a concept's phrasing) names, not counting one it only measures against
    ("than anaerobic respiration"), ``ALL_ROLES`` where it names several, else ``NO_ROLE``."""
    found = [(j, k) for j, k in enumerate(_entity_key(w.norm) for w in analysis.words) if k in names]
    named = {k for _, k in found}
    if len(named) > 1:  # "aerobic respiration releases more energy than anaerobic respiration" is about aerobic
        against = _measured_against(analysis.words, 0, len(analysis.words))
        subjects = {k for j, k in found if j not in against}
        named = subjects if len(subjects) == 1 else named
    return names.index(named.pop()) if len(named) == 1 else ALL_ROLES if named else NO_ROLE


# Opposite directions in everyday words, as word families (a short one also covers the longer forms it
# begins: "weak" weaker, weaken): a clause that says the one of what a concept says with the other reverses
# it ("it weakens the currency" of "a higher rate strengthens the currency").
ANTONYMS = frozenset(pair for x, y in (("strong", "weak"), ("streng", "weak"), ("cheap", "expens"), ("rise", "fall"),
                                       ("increa", "decrea"), ("apprec", "deprec"), ("accele", "decele"),
                                       ("gain", "lose"), ("stärk", "schwäc"), ("steig", "sink"), ("billig", "teuer"),
                                       ("zunehm", "abnehm"))
                     for pair in ((x, y), (y, x)))


def contrast_pairs(analyses) -> frozenset[tuple[str, str]]:
    """(asserted root, denied root) pairs that the texts put in opposition ("additively rather than multiplicatively").

    Both directions are returned: a concept may hold either side.
    """
    pairs: set[tuple[str, str]] = set()
    for a in analyses:
        norms = [w.norm for w in a.words]
        for i in range(1, len(norms)):
            for cue in _CONTRAST_CUES:
                n = len(cue)
                if tuple(norms[i : i + n]) != cue or i + n >= len(norms):
                    continue
                if cue in _AFTER_COMMA and "," not in a.text[a.words[i - 1].end : a.words[i].start]:
                    continue
                before = next((j for j in range(i - 1, max(-1, i - 3), -1) if a.content[j]), None)
                after = next((j for j in range(i + n, min(len(norms), i + n + 3)) if a.content[j]), None)
                if before is None or after is None:
                    continue
                x, y = root(a.words[before].stem), root(a.words[after].stem)
                if x != y and len(x) >= 3 and len(y) >= 3:
                    pairs.update({(x, y), (y, x)})
    return frozenset(pairs)


def number_of(norm: str) -> str | None:
    """A word's number ("1", "one" -> "1"), or None."""
    if _NUMBER.match(norm):
        return norm.replace(",", ".")
    return _NUMBER_WORDS.get(norm)


# Comparatives: which way a quantity goes ("less dense", "denser", "a lower density", "the force is greater").
_MORE = frozenset("more greater higher larger bigger mehr höher größer".split())
_LESS = frozenset("less fewer lower smaller weniger niedriger kleiner geringer".split())
_THAN = frozenset({"than", "als"})
# Adjectives whose comparatives name one quantity from either end, as (quantity, direction).
_POLES = {"fast": ("fast", 1), "quick": ("fast", 1), "slow": ("fast", -1), "high": ("high", 1), "low": ("high", -1),
          "larg": ("larg", 1), "big": ("larg", 1), "great": ("larg", 1), "small": ("larg", -1), "long": ("long", 1),
          "short": ("long", -1), "strong": ("strong", 1), "weak": ("strong", -1), "wide": ("wide", 1),
          "narrow": ("wide", -1), "thick": ("thick", 1), "thin": ("thick", -1), "hot": ("hot", 1), "warm": ("hot", 1),
          "cold": ("hot", -1), "earli": ("earli", 1), "late": ("earli", -1), "schnell": ("fast", 1),
          "langsam": ("fast", -1), "hoch": ("high", 1), "niedrig": ("high", -1), "gross": ("larg", 1),
          "klein": ("larg", -1)}


@dataclass(frozen=True)
class Comparison:
    """A direction an analysed text gives a quantity: ``at`` the word that names it, ``quantity`` its word
    family, ``direction`` +1 (more) or -1 (less), ``subject`` and ``measure`` the word families of what is
    compared (before it in its clause) and of what it is measured against (after "than")."""

    at: int
    quantity: str
    direction: int
    subject: frozenset[str]
    measure: frozenset[str]


@dataclass(frozen=True)
class Contrast:
    """What reverses one concept: word families opposed to its own, numbers it fixes, and comparatives.

    ``own``: roots of the concept's words that have an opposite; ``opposite``: those
    opposites; ``numbers``: numbers the concept states; ``number_context``: the word just
    before them ("near"), or the two when the first is a function word (("close", "to")), where
    another number contradicts it; ``comparisons``: (quantity, direction) the concept states
    ("less dense": ("dens", -1)), with ``compared`` and ``against``, the word families of what
    it compares and of what it measures against ("ice", "water").
    """

    own: frozenset[str] = frozenset()
    opposite: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    number_context: frozenset[str] = frozenset()
    comparisons: frozenset[tuple[str, int]] = frozenset()
    compared: frozenset[str] = frozenset()
    against: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.opposite or self.numbers or self.comparisons)


def _same_family(a: str, b: str) -> bool:
    """Word families of one word: equal, or one begins the other ("dens" of dense, "densit" of density)."""
    short, long_ = sorted((a, b), key=len)
    return short == long_ or (len(short) >= 4 and long_.startswith(short))


def _pole(family: str) -> tuple[str, int]:
    return _POLES.get(family, (family, 1))


def comparisons(analysis: Analysis, quantities: frozenset[str] = frozenset()) -> list[Comparison]:
    """The comparatives of an analysed text: "more"/"less" before a word ("less dense", "more tightly"),
    "higher"/"lower" before a noun or after one ("a lower density", "the density is lower"), and a word
    ending in "-er" ("denser", "slower") whose base is one of ``quantities`` (word families) or a pole of
    :data:`_POLES`. A negated word states no direction."""
    words, content, negated = analysis.words, analysis.content, analysis.negated
    out = []
    for s, e in analysis.clauses:
        than = next((i for i in range(s, e) if words[i].norm in _THAN), e)
        measure = frozenset(root(words[i].stem) for i in range(than + 1, e) if content[i])
        for i in range(s, e):
            norm = words[i].norm
            if negated[i]:
                continue
            at = None
            if norm in _MORE or norm in _LESS:
                direction = 1 if norm in _MORE else -1
                after = next((j for j in range(i + 1, min(e, i + 3))
                              if content[j] and words[j].norm not in _THAN), None)
                if after is not None and words[after].norm not in _MORE | _LESS:
                    at, family = after, root(words[after].stem)
                elif norm not in ("more", "less", "fewer", "mehr", "weniger"):
                    # what is higher: the noun before it, or before an "of" ("the density of ice is lower")
                    of = next((j for j in range(max(s, i - 6), i) if words[j].norm in ("of", "von")), i)
                    before = next((j for j in range(of - 1, max(s - 1, of - 4), -1) if content[j]), None)
                    at, family = (before, root(words[before].stem)) if before is not None else (i, "larg")
                    if at == i and norm in ("higher", "lower", "höher", "niedriger"):
                        family = "high"
            elif len(norm) >= 5 and norm.endswith("er"):
                for base in (norm[:-2], norm[:-1], norm[:-3], norm[:-3] + "y"):
                    family = root(stem(base))
                    if len(base) >= 3 and (family in _POLES or any(_same_family(family, q) for q in quantities)):
                        at, direction = i, 1
                        break
            if at is None:
                continue
            quantity, pole = _pole(family)
            subject = frozenset(root(words[j].stem) for j in range(s, min(i, at)) if content[j])
            out.append(Comparison(at, quantity, direction * pole, subject, measure if than > i else frozenset()))
    return out


def _stated_direction(c: Comparison, contrast: Contrast) -> int:
    """+1 when comparison ``c`` of an answer says what ``contrast``'s concept says of its quantity, -1 when it
    says the opposite, 0 when it speaks of another quantity. Turned round ("water is denser than ice" for
    "ice is less dense than water"), it says the same."""
    def meets(words: frozenset[str], others: frozenset[str]) -> bool:
        return any(_same_family(a, b) for a in words for b in others)

    for quantity, direction in contrast.comparisons:
        if _same_family(quantity, c.quantity):
            if c.measure:  # what it is measured against decides: the concept's subject there turns it round
                flip = meets(c.measure, contrast.compared) and not meets(c.measure, contrast.against)
            else:
                flip = meets(c.subject, contrast.against) and not meets(c.subject, contrast.compared)
            return 1 if (c.direction == direction) != flip else -1
    return 0


def contrast_of(phrasings, pairs: frozenset[tuple[str, str]]) -> Contrast:
    """The :class:`Contrast` of a concept from its analysed phrasings and the question's contrast pairs."""
    # the words a phrasing asserts: "added to rather than overwritten" asserts "added"
    roots = frozenset(root(w.stem) for a in phrasings for w, c, n in zip(a.words, a.content, a.negated) if c and not n)
    own = {x for x, y in pairs if in_family(x, roots) and not in_family(y, roots)}
    opposite = {y for x, y in pairs if x in own}
    numbers, context = set(), set()
    for a in phrasings:
        for i, w in enumerate(a.words):
            value = number_of(w.norm)
            if value is not None:
                numbers.add(value)
                if i > 0:
                    # "near 1" -> "near"; "close to one" -> ("close", "to"): "goes to zero" says nothing of it
                    before = a.words[i - 1].norm
                    light = before in STOPWORDS.get(a.language, STOPWORDS["en"]) and i > 1
                    context.add((a.words[i - 2].norm, before) if light else before)
    found = [c for a in phrasings for c in comparisons(a)]
    compared = frozenset().union(*(c.subject for c in found)) if found else frozenset()
    against = frozenset().union(*(c.measure for c in found)) if found else frozenset()
    return Contrast(frozenset(own), frozenset(opposite), frozenset(numbers), frozenset(context),
                    frozenset((c.quantity, c.direction) for c in found), compared - against, against - compared)


def _in_number_context(words, i: int, context: frozenset) -> bool:
    """Whether the number at ``words[i]`` follows a word (or two) that precedes the concept's own number."""
    return i > 0 and (words[i - 1].norm in context or (i > 1 and (words[i - 2].norm, words[i - 1].norm) in context))


@lru_cache(maxsize=64)  # each answer asks once per concept and span set; a grading batch holds many answers
def _asserted_sides(analysis: Analysis, contrast: Contrast) -> tuple[np.ndarray, np.ndarray]:
    """(own, opposite): per word, whether it asserts (outside a negation scope) one of the concept's words
    that have an opposite, or one of those opposites. Only content words belong to a word family: "over"
    is no "overwritten"."""
    n = len(analysis.words)
    own = np.zeros(n, dtype=bool)
    opposite = np.zeros(n, dtype=bool)
    for i, w in enumerate(analysis.words):
        if analysis.negated[i] or not analysis.content[i]:
            continue
        r = root(w.stem)
        opposite[i] = in_family(r, contrast.opposite)
        own[i] = not opposite[i] and in_family(r, contrast.own)
    if contrast.comparisons:
        for c in comparisons(analysis, frozenset(q for q, _ in contrast.comparisons)):
            said = _stated_direction(c, contrast)
            own[c.at] |= said > 0
            opposite[c.at] |= said < 0
    return own, opposite


def own_side_spans(analysis: Analysis, contrast: Contrast, bounds: np.ndarray) -> np.ndarray:
    """Which spans (rows of ``bounds``) assert one of the concept's words that have an opposite
    ("adds" of "additive updates"), outside a negation scope."""
    own = np.concatenate([[0], np.cumsum(_asserted_sides(analysis, contrast)[0])])
    return (own[bounds[:, 1]] - own[bounds[:, 0]]) > 0


def reversed_spans(analysis: Analysis, contrast: Contrast, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reversing, mixed): which spans (rows of ``bounds``) reverse the concept of ``contrast``,
    and which assert both sides of it.

    A clause reverses the concept when it asserts (outside a negation scope) an opposite of
    the concept's words and none of those words themselves, or gives another number where the
    concept gives its own ("near 0" for "near 1") and not the concept's number. A span
    reverses it when it reaches into such a clause and asserts none of the concept's words
    ("its cell state is updated" of "its cell state is updated multiplicatively"). A span that
    offers both sides as alternatives ("by addition, or possibly multiplication") states neither;
    one that asserts both ("the old value, scaled, plus the new one") reverses nothing.
    """
    n = len(analysis.words)
    none = np.zeros(len(bounds), dtype=bool)
    if contrast.empty or not n or not len(bounds):
        return none, none
    own, opposite = (side.astype(np.int64) for side in _asserted_sides(analysis, contrast))
    words = analysis.words
    for i, w in enumerate(words if contrast.numbers else ()):
        value = None if analysis.negated[i] else number_of(w.norm)
        if value is None:
            continue
        if value in contrast.numbers:
            own[i] = 1
        elif _in_number_context(words, i, contrast.number_context):
            opposite[i] = 1
    # Another number offered as the alternative to the concept's ("entweder zwei oder vier", "two or maybe
    # four") is its opposite wherever it stands; "more or less", "up or down" offer both directions at once.
    for i, w in enumerate(words if contrast.numbers else ()):
        if own[i] and number_of(w.norm) in contrast.numbers:
            for j in range(max(0, i - _HEDGE_GAP), min(n, i + _HEDGE_GAP + 1)):
                other = number_of(words[j].norm)
                if other is not None and other not in contrast.numbers \
                        and any(words[k].norm in _OR for k in range(min(i, j) + 1, max(i, j))):
                    opposite[j] = 1
    both_ways = np.zeros(n, dtype=np.int64)
    both_ways[matched_words(_BOTH_WAYS, analysis)] = 1
    if not opposite.any() and not both_ways.any():
        return none, none
    zone = np.zeros(n, dtype=np.int64)  # words of clauses that reverse the concept
    for s, e in analysis.clauses:
        if opposite[s:e].any() and not own[s:e].any():
            zone[s:e] = 1
    op = np.concatenate([[0], np.cumsum(opposite)])
    ow = np.concatenate([[0], np.cumsum(own)])
    zo = np.concatenate([[0], np.cumsum(zone)])
    hedged = _either_or(words, own, opposite) | both_ways
    for cs, ce in analysis.clauses:  # the hedge's clause states neither side: "it is updated either by addition
        if hedged[cs:ce].any():      # or maybe by multiplication" holds no claim in "it is updated either"
            hedged[cs:ce] = 1
    he = np.concatenate([[0], np.cumsum(hedged)])
    s, e = bounds[:, 0], bounds[:, 1]
    owns = (ow[e] - ow[s]) > 0
    return ((zo[e] - zo[s]) > 0) & ~owns, (he[e] - he[s]) > 0


_OR = frozenset({"or", "oder", "ou", "o"})
_BOTH_WAYS = re.compile(r"\b(?:more\s+or\s+less|less\s+or\s+more|higher\s+or\s+lower|lower\s+or\s+higher|"
                        r"up\s+or\s+down|down\s+or\s+up|mehr\s+oder\s+weniger|höher\s+oder\s+niedriger)\b",
                        re.IGNORECASE)
# "..., or maybe it's the other way around", "I always mix them up", "I forget which": the sentence says which
# side does what, or which way a thing goes, and takes it back.
_UNSURE_WHICH = re.compile(
    r"\b(?:or\s+(?:maybe\s+|perhaps\s+|possibly\s+)?(?:(?:it'?s|it\s+is|it\s+was)\s+)?the\s+other\s+way"
    r"|or\s+(?:maybe\s+|perhaps\s+)?vice\s+versa"
    r"|(?:mix|mixed|mixing|get|got|confuse|confused)\s+(?:them|these|those|the\s+two|both)\s+(?:mixed\s+)?up"
    r"|(?:forget|forgot|(?:can'?t|cannot|can\s+never|never|don'?t|do\s+not)\s+remember|(?:i\s+am|i'?m|im)\s+not\s+sure)"
    r"\s+which"
    r"|oder\s+(?:vielleicht\s+)?umgekehrt|verwechsle\s+(?:die|das|sie|beide))\b", re.IGNORECASE)


def unsure_sentences(analysis: Analysis) -> np.ndarray | None:
    """Per word: whether its sentence takes back which side does what (:data:`_UNSURE_WHICH`): such a
    sentence states no concept and reverses none. None when no sentence does."""
    hits = matched_words(_UNSURE_WHICH, analysis)
    if not hits:
        return None
    out = np.zeros(len(analysis.words), dtype=bool)
    for s, e in analysis.sentences:
        if any(s <= i < e for i in hits):
            out[s:e] = True
    return out


_HEDGE_GAP = 4  # words from one side of an either/or hedge to the other ("addition, or possibly multiplication")


def _either_or(words, own: np.ndarray, opposite: np.ndarray) -> np.ndarray:
    """Per word: whether it is one side of an either/or hedge between the concept's word and its opposite
    ("updated by addition, or possibly multiplication"): a span holding either side asserts neither."""
    out = np.zeros(len(words), dtype=np.int64)
    sides = np.flatnonzero(own | opposite)
    for a, b in zip(sides, sides[1:]):
        if own[a] != own[b] and b - a <= _HEDGE_GAP and any(words[i].norm in _OR for i in range(a + 1, b)):
            out[a] = out[b] = 1
    return out


def misnumbered_sentences(analysis: Analysis, contrast: Contrast, roles: np.ndarray | None = None,
                          role: int = NO_ROLE) -> np.ndarray:
    """Per word: whether it rests on a clause that gives another number where the concept of ``contrast``
    gives its own ("the forget gate is close to 0" for "near 1"), outside a negation scope. A concept about
    an entity (``role``, with the answer's word ``roles``) takes no other number from a clause about another
    one: "Mitosis produces two cells" gives meiosis no wrong count.

    Such a clause is a false claim: the other concepts that the part of its sentence (:func:`_resting_on`)
    seems to state rest on it.
    """
    n = len(analysis.words)
    out = np.zeros(n, dtype=bool)
    if not contrast.numbers or not n:
        return out
    words = analysis.words
    wrong = np.zeros(n, dtype=bool)
    right = np.zeros(n, dtype=bool)
    for i, w in enumerate(words):
        value = number_of(w.norm)
        if value is None or analysis.negated[i]:
            continue
        if roles is not None and role != NO_ROLE and roles[i] >= 0 and roles[i] != role:
            continue
        if value in contrast.numbers:
            right[i] = True
        elif _in_number_context(words, i, contrast.number_context):
            wrong[i] = True
    if not wrong.any():
        return out
    return _resting_on(analysis, lambda cs, ce: wrong[cs:ce].any() and not right[cs:ce].any())


def _resting_on(analysis: Analysis, is_false) -> np.ndarray:
    """Per word: whether it rests on a clause [cs, ce) for which ``is_false(cs, ce)`` holds: it lies in the
    part of that clause's sentence that holds it. A part begins at the sentence's start or at a clause that
    opens with a coordinating word, so in "the cell state is updated by adding ..., and when the forget gate
    is close to 0 the old memory is kept" the first statement stands on its own, while "the cell state is
    kept, as long as the forget gate is close to 0" rests on its condition."""
    words = analysis.words
    out = np.zeros(len(words), dtype=bool)
    for s, e in analysis.sentences:
        clauses = [(cs, ce) for cs, ce in analysis.clauses if s <= cs < e]
        starts = [cs for cs, _ in clauses if cs == s or words[cs].norm in _PART_START]
        for cs, ce in clauses:
            if is_false(cs, ce):
                out[max(a for a in starts if a <= cs):min((a for a in starts if a > cs), default=e)] = True
    return out


def reversed_sentences(analysis: Analysis, contrast: Contrast, roles: np.ndarray, role: int) -> np.ndarray:
    """Per word: whether it rests on a clause about ``role``'s entity that asserts an opposite of the concept
    of ``contrast`` and none of its words ("the LSTM's cell state is updated multiplicatively").

    Such a clause is a false claim: the other concepts that the part of its sentence (:func:`_resting_on`)
    seems to state rest on it.
    """
    n = len(analysis.words)
    out = np.zeros(n, dtype=bool)
    if not (contrast.opposite or contrast.comparisons) or not n:
        return out
    own, opposite = _asserted_sides(analysis, contrast)
    if not opposite.any():
        return out
    return _resting_on(analysis, lambda cs, ce: opposite[cs:ce].any() and not own[cs:ce].any()
                       and set(roles[cs:ce].tolist()) - {NO_ROLE, ALL_ROLES} == {role})
