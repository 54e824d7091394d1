"""Detectors of answers that try to game the grader, or cannot be graded as written.

Each detector looks at one answer and may return a :class:`Detection`: a flag
with its reason and, when the attack is certain, a cap on the grade fraction.
Every detector is tuned so that honest answers (short, terse, misspelt, with
formulas or lists) are left alone: see ``bench/robustness.py`` for the rates.
Reasons are shown to students, so none quotes the model answer.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable

import numpy as np

from grader.scoring.lexicon import (ASKS_FOR_LIST, ASKS_FOR_REASONS, CLAUSE_WORDS, FILLER_WORDS, FUNCTION_WORDS,
                                    answer_language, encoder_vocabulary, looks_random)
from grader.result import Flag
from grader.text import NEGATION_CUES, STOPWORDS, Analysis, analyze, may_match, stem

PARTIAL_CAP = 0.4  # "at most partial credit": below the 50% at which an answer counts as accepted
FILLER_SHARE = 0.1  # share of an answer's words that may be stock adjectives and adverbs before it is flagged
OFF_TOPIC_SIM = 0.25  # cosine to the prompt and every reference below which an answer talks about something else
OFF_TOPIC_SHARE = 0.25  # share of its content words the answer may share with the model answer before it is on topic
OFF_TOPIC_SHARED = 1  # content words it may share with the model answer ("learned"): more is the same subject


@dataclass(frozen=True)
class Detection:
    """A flag and the highest grade fraction the answer may keep (1.0: no cap)."""

    flag: Flag
    cap: float = 1.0


@dataclass(frozen=True)
class AnswerView:
    """What detectors may look at: the text, its analysis, its signals and the question's."""

    text: str
    analysis: Analysis
    signals: dict[str, float]
    prompt_stems: frozenset
    reference_stems: frozenset
    key_found: int
    key_total: int
    question: object | None = None  # the ShortAnswerQuestion (reference answers, key phrases), when known
    key_stated: int = 0  # key phrases found on sure evidence (of ``key_found``)

    @cached_property
    def reference(self) -> "_Reference | None":
        """What the question's reference answers and key phrases offer (None without a question)."""
        return None if self.question is None else _reference(self.question, self.analysis.language)

    @cached_property
    def norms(self) -> list[str]:
        """The answer's normalised words."""
        return [w.norm for w in self.analysis.words]


Detector = Callable[[AnswerView], "Detection | None"]


def _hit(code: str, reason: str, cap: float = 1.0, review: bool = True) -> Detection:
    return Detection(Flag(code, reason, review), cap)


# -- what a question offers, computed once per question ----------------------------------
@dataclass(frozen=True)
class _Reference:
    sentences: tuple[tuple[frozenset, frozenset], ...]  # (content stems, negated content stems) per sentence
    words: frozenset  # every word (normalised) of the reference answers
    bigrams: frozenset
    phrasings: tuple[tuple[str, ...], ...]  # key-phrase phrasings as word sequences
    negated: frozenset = frozenset()  # stems the reference answers themselves negate somewhere
    asks_for_list: bool = False  # the prompt asks to name things, and for no explanation


@lru_cache(maxsize=512)
def _reference(question, language: str) -> _Reference:
    refs = tuple(getattr(question, "reference_answers", ()) or ())
    sentences, words, bigrams = [], set(), set()
    for ref in refs:
        a = analyze(ref, language)
        norms = [w.norm for w in a.words]
        words.update(norms)
        bigrams.update(zip(norms, norms[1:]))
        for s, e in a.sentences:
            content = _content(a, s, e)
            if content:  # "It is." states nothing an answer could restate or contradict
                sentences.append((content, _negated(a, s, e)))
    phrasings = []
    for kp in getattr(question, "key_phrases", ()) or ():
        for text in (kp.text, *kp.alternatives):
            seq = tuple(w.norm for w in analyze(text, language).words)
            if len(seq) >= 2:
                phrasings.append(seq)
    negated = frozenset().union(*(n for _, n in sentences)) if sentences else frozenset()
    prompt = getattr(question, "prompt", "") or ""
    asks_for_list = bool(ASKS_FOR_LIST.search(prompt)) and not ASKS_FOR_REASONS.search(prompt)
    return _Reference(tuple(sentences), frozenset(words), frozenset(bigrams), tuple(phrasings), negated,
                      asks_for_list)


def _content(a: Analysis, s: int, e: int) -> frozenset:
    return frozenset(w.stem for w, c in zip(a.words[s:e], a.content[s:e]) if c)


_FALSITY = re.compile(r"\b(?:not\s+(?:true|the\s+case|correct)|(?:false|wrong|incorrect|untrue)\s+(?:to\s+say\s+)?that|"
                      r"stimmt\s+nicht|nicht\s+(?:wahr|richtig|der\s+fall))\b", re.IGNORECASE)


def _negated(a: Analysis, s: int, e: int) -> frozenset:
    """Content stems of words [s, e) inside a negation scope; all of them after "it is not true that"."""
    whole = bool(_FALSITY.search(a.span_text(s, e)))
    return frozenset(w.stem for w, neg, c in zip(a.words[s:e], a.negated[s:e], a.content[s:e]) if (neg or whole) and c)


_DIGIT = re.compile(r"\d")


def _unknown_words(view: AnswerView) -> tuple[int, int]:
    """(unknown, all) words of an English answer; unknown: in no vocabulary, the question or the reference."""
    vocab, vocab_stems = encoder_vocabulary()
    if not vocab:
        return 0, 0
    stop = STOPWORDS["en"]
    prompt_stems, reference_stems = view.prompt_stems, view.reference_stems
    words = view.analysis.words
    unknown = 0
    for w in words:
        if len(w.norm) <= 2 or w.norm in stop or w.norm in vocab or _DIGIT.search(w.norm):
            continue
        if w.stem in prompt_stems or w.stem in reference_stems or w.stem in vocab_stems \
                or stem(w.norm.rstrip("s")) in vocab_stems:
            continue
        unknown += 1
    return unknown, len(words)


def random_characters(view: AnswerView) -> Detection | None:
    """Most tokens are random character strings."""
    tokens = view.text.split()
    if len(tokens) < 3:
        return None
    random_share = sum(map(looks_random, tokens)) / len(tokens)
    if random_share >= 0.4:
        return _hit("random_characters", f"{random_share:.0%} of the answer's tokens are random characters", 0.0)
    return None


def gibberish(view: AnswerView) -> Detection | None:
    """Most words are no words of the language (English answers; needs the encoder's vocabulary)."""
    if view.analysis.language != "en":
        return None
    unknown, total = _unknown_words(view)
    if total >= 4 and unknown / total >= 0.5 and random_characters(view) is None:
        return _hit("gibberish", f"{unknown} of the answer's {total} words are not words", 0.0)
    return None


# -- lists, shuffles, copies -----------------------------------------------------------------
def keyword_list(view: AnswerView) -> Detection | None:
    """A bare list of key phrases or content words, not sentences: at most partial credit."""
    norms = view.norms
    if len(norms) < 5:
        return None
    ref = view.reference
    if ref and ref.phrasings:
        covered = np.zeros(len(norms), dtype=bool)
        used = set()
        for seq in ref.phrasings:
            n = len(seq)
            for i in range(len(norms) - n + 1):
                if tuple(norms[i : i + n]) == seq:
                    covered[i : i + n] = True
                    used.add(seq)
        # Key phrases written inside real sentences leave other words uncovered; a bare list leaves none.
        if len(used) >= 2 and covered.mean() >= 0.9:
            return _hit("keyword_list", "the answer lists the rubric's key phrases instead of answering in sentences",
                        PARTIAL_CAP)
    if not (ref and ref.asks_for_list) and _term_list(view):
        return _hit("keyword_list", "the answer is a list of terms with no sentence that explains them", PARTIAL_CAP)
    stop = STOPWORDS.get(view.analysis.language, STOPWORDS["en"])
    if ref and _terse_copy(norms, ref, stop):
        return _hit("keyword_list", "the answer lists the model answer's words without a sentence", PARTIAL_CAP)
    # Terse notes that state two key phrases on sure evidence ("h multiplied by same W every step -> grads
    # vanish") say something, however few function words they spend on it.
    if view.key_stated >= 2:
        return None
    norms = [n for n in norms if n.isalpha() and len(n) > 1]  # formulas and numbers are not keywords
    if len(norms) < 8 or sum(n in stop for n in norms) / len(norms) > 0.08:  # sentences have function words
        return None
    if answer_language(view.text)[0] not in (None, view.analysis.language):
        return None
    segments = [s for s in re.split(r"[,;\n•|/]+", view.text) if s.strip()]
    if sum(bool(_MAPS_TO.search(s)) for s in segments) >= 2:
        return None  # notes that label or map things ("Mitose: 2 Zellen", "2n -> n") say something in each line
    per_segment = len(norms) / max(1, len(segments))
    long_run = max(len(s.split()) for s in segments)
    if (len(segments) >= 6 and per_segment <= 1.6) or long_run >= 10:
        return _hit("keyword_list", "the answer is a list of words without sentences", PARTIAL_CAP)
    return None


# Where a list splits into its terms: commas, semicolons, line breaks, bullets, dashes, "X: Y", and/or.
_TERM_BREAK = re.compile(r"[,;\n•|·]+|[.!?](?:\s|$)|\s/\s|\s[-–—]+\s|(?:^|\s)[-–—*]+(?=\w)|:\s"
                         r"|\b(?:and|or|und|oder)\b",
                         re.IGNORECASE)
_MAPS_TO = re.compile(r":|->|→|=>|=")  # inside a piece: "label: value", "cause -> effect"
# what separates the items of a bare enumeration ("cell state / forget gate / BPTT" too)
_ENUMERATION = re.compile(r"[,;\n•|·]+|[.!?](?:\s|$)|\s/\s")
TERM_WORDS = 5  # a term has at most this many words; longer pieces are phrases a reader must parse
TERM_LIST_MIN = 3  # terms from which a text is a list: "forget gate, cell state, gradient highway"
TERM_LIST_SHARE = 0.8  # share of an answer's words inside bare terms from which it is a list of terms
# Everyday verbs: a piece that holds one says something ("carbon dioxide goes in", "the plant needs light").
_COMMON_VERBS = {"en": frozenset("""go goes went gone come comes came make makes made take takes took taken get gets got
    give gives gave given need needs needed put puts use uses used keep keeps kept become becomes became turn turns
    turned produce produces produced release releases released cause causes caused lead leads led mean means meant
    show shows showed grow grows grew stay stays stayed""".split()),
                 "de": frozenset("""geht gehen ging kommt kommen kam macht machen machte nimmt nehmen braucht brauchen
    gibt geben entsteht entstehen bildet bilden erzeugt erzeugen""".split())}
# Words that make a piece of an answer a statement rather than a bare term, per language.
_STATEMENT_WORDS = {lang: words | _COMMON_VERBS.get(lang, frozenset()) for lang, words in CLAUSE_WORDS.items()}


def lists_terms(text: str, analysis: Analysis, question) -> bool:
    """Whether an answer is a bare list of terms ("Additive updates with gating. Multiplicative
    recurrence."): it names concepts without stating anything about them. False when the
    question asks for a list."""
    ref = None if question is None else _reference(question, analysis.language)
    if ref is not None and ref.asks_for_list:
        return False
    # Only an enumeration: "Mitosis: two identical cells. Meiosis: four." states something in notes.
    return _term_list(AnswerView(text, analysis, {}, frozenset(), frozenset(), 0, 0, question), _ENUMERATION)


def _term_list(view: AnswerView, breaks: re.Pattern | None = None) -> bool:
    """Three or more bare terms, holding most of the answer's words, and no clause around them.

    "additive updates with gating, multiplicative recurrence, forget gate, cell state" names
    concepts without saying anything about them, whatever share of the rubric's phrases it
    holds. A piece is listed when it has at most ``TERM_WORDS`` words and none of
    ``CLAUSE_WORDS`` (auxiliaries, pronouns, subordinators, negations), or when it is one of the
    rubric's phrasings word for word. Answers of formulas and numbers, and languages without a
    word list, are left to the other checks.
    """
    clause = _STATEMENT_WORDS.get(view.analysis.language)
    words = view.analysis.words
    if clause is None or len(words) < 5 or sum(w.norm.isalpha() for w in words) < 0.8 * len(words):
        return False
    cuts = [m.span() for m in (breaks or _TERM_BREAK).finditer(view.text)]
    if len(cuts) < TERM_LIST_MIN - 1:
        return False
    pieces: list[list] = [[]]
    cut = 0
    for w in words:
        if cut < len(cuts) and w.start >= cuts[cut][0]:
            while cut < len(cuts) and w.start >= cuts[cut][0]:
                cut += 1
            if pieces[-1]:
                pieces.append([])
        if not (cut and cuts[cut - 1][0] <= w.start < cuts[cut - 1][1]):  # "and"/"or" is a break, not a word
            pieces[-1].append(w)
    pieces = [p for p in pieces if p]
    phrasings = set(view.reference.phrasings) if view.reference else set()
    # "Mitose: 2 Zellen", "by ref -> alias": a piece that labels or maps one thing to another says something
    said = [bool(_MAPS_TO.search(view.text, p[0].end, p[-1].start)) if len(p) > 1 else False for p in pieces]
    listed = [len(p) for p, maps in zip(pieces, said) if (len(p) <= TERM_WORDS and not maps
                                                         and not any(w.norm in clause for w in p))
              or tuple(w.norm for w in p) in phrasings]
    return len(listed) >= TERM_LIST_MIN and sum(listed) >= TERM_LIST_SHARE * sum(map(len, pieces))


def restates_question(view: AnswerView) -> Detection | None:
    """The answer only copies or rewords the question: it earns nothing. One that states a key phrase on sure
    evidence answers it, however few words it adds ("Water is denser than ice, so ice floats")."""
    stems = view.analysis.content_stems()
    if not stems or not view.prompt_stems or view.key_stated:
        return None
    new = stems - view.prompt_stems - view.reference_stems
    copied = len(stems & view.prompt_stems) / len(stems)
    if copied >= 0.6 and len(new) <= 2 and view.signals.get("q_sim", 0.0) >= 0.75 \
            and view.signals.get("ref_minus_q", 0.0) <= 0.05:
        return _hit("restates_question", "the answer restates the question without answering it", 0.0)
    return None


_DET = frozenset("the a an this these those its their each every".split())
_PREP = frozenset("of in on at by for with from into onto over under between through during about".split())
_CONJ = frozenset("and or but nor".split())
_BAD = {(a, b) for a in _DET for b in _DET | _PREP | _CONJ} | {(a, b) for a in _PREP for b in _PREP | _CONJ} \
    | {(a, b) for a in _CONJ for b in _CONJ}
_BAD_FIRST = frozenset(a for a, _ in _BAD)


def shuffled_words(view: AnswerView) -> Detection | None:
    """Words without syntax: the reference's words out of order, or function words in impossible order."""
    words = view.analysis.words
    norms = view.norms
    if len(norms) < 8:
        return None
    ref = view.reference
    if ref and ref.words:
        from_ref = sum(n in ref.words for n in norms) / len(norms)
        bigrams = list(zip(norms, norms[1:]))
        in_order = sum(b in ref.bigrams for b in bigrams) / len(bigrams)
        if from_ref >= 0.95 and in_order < 0.25:
            return _hit("shuffled_words", "the answer's words come from the model answer but in scrambled order", 0.0)
    if view.analysis.language == "en":
        # Within a sentence, "the of", "of and", "a the" do not occur in written English.
        bad = sum(1 for s, e in view.analysis.sentences for a, b in zip(words[s:e - 1], words[s + 1:e])
                  if a.norm in _BAD_FIRST and (a.norm, b.norm) in _BAD and view.text[a.end : b.start].strip() == "")
        if bad >= 3 and bad / len(norms) >= 0.06:
            return _hit("shuffled_words", f"the answer has no syntax ({bad} impossible word sequences)", 0.0)
    return None


# -- hostile content ---------------------------------------------------------------------------
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(?:rubric|instructions?|reference|rules?|prompt|"
    r"grading|criteria|previous|above)\b"
    r"|\b(?:award|give|grant|assign)\b[^.!?\n]{0,30}\b(?:full|maximum|max|all|100\s*%|perfect)\b[^.!?\n]{0,15}"
    r"\b(?:marks?|points?|score|credit|grade)\b"
    r"|\b(?:mark|grade|score|rate|label)\b[^.!?\n]{0,30}\bas\s+(?:fully\s+)?correct\b"
    r"|\b(?:note|message|instruction)s?\s+(?:to|for)\s+(?:the\s+)?(?:grader|marker|examiner|ai|model)\b"
    r"|^\s*(?:system|assistant)\s*:|\bas\s+an?\s+(?:ai|language\s+model|grading\s+assistant)\b"
    r"|\b(?:score|grade|points)\s*[:=]\s*(?:100\s*%|\d+\s*/\s*\d+)"
    r"|\b(?:ignoriere|vergiss)\b[^.!?\n]{0,40}\b(?:bewertung|anweisungen|rubrik)\b"
    r"|\bvolle\s+punkt(?:zahl|e)\b",
    re.IGNORECASE | re.MULTILINE)


# Every match of _INJECTION holds one of these (alternative by alternative, in order); on
# whitespace-collapsed text, "as a" stands for "as a(n) ai/language model/grading assistant".
_INJECTION_WORDS = ("ignore", "disregard", "forget", "override", "award", "give", "grant", "assign", "correct",
                    "note", "message", "instruction", "system", "assistant", "as a", "score", "grade", "points",
                    "ignoriere", "vergiss", "volle")


def prompt_injection(view: AnswerView) -> Detection | None:
    """An instruction aimed at the grader rather than an answer to the question."""
    if not may_match(" ".join(view.text.split()), _INJECTION_WORDS):
        return None  # the regex costs ~0.4 us a character; most answers hold none of its words
    m = _INJECTION.search(view.text)
    if m:
        return _hit("prompt_injection", "the answer contains an instruction aimed at the grader", 0.0)
    return None


# An event handler ("onerror=") counts inside a tag only: "below one => shrinkage" is no markup.
_HOSTILE_MARKUP = re.compile(
    r"<\s*/?\s*(?:script|iframe|object|embed|svg|style|link|meta|form|input|base)\b|<[a-z][^<>]*\son[a-z]+\s*="
    r"|javascript\s*:|data\s*:\s*text/html|display\s*:\s*none|visibility\s*:\s*hidden"
    r"|<[a-z][^<>]*\bhidden\b[^<>]*>|font-size\s*:\s*0",
    re.IGNORECASE)
_MARKUP_WORDS = ("<", ">", "javascript", "text/html", "display", "visibility", "font-size")  # one is in every match
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")


def markup(view: AnswerView) -> Detection | None:
    """HTML: scripts and hidden text earn nothing; harmless tags are only flagged."""
    if not may_match(view.text, _MARKUP_WORDS):
        return None  # neither regex can match: every match of each holds one of the words
    if _HOSTILE_MARKUP.search(view.text):
        return _hit("markup", "the answer contains script or hidden HTML content", 0.0)
    if len(_TAG.findall(view.text)) >= 2:
        return _hit("markup", "the answer contains HTML tags")
    return None


def other_language(view: AnswerView) -> Detection | None:
    """The answer is written in another language than the question."""
    expected = view.analysis.language
    found, counts = answer_language(view.text)
    if found is None or found == expected or expected not in FUNCTION_WORDS:
        return None
    if counts[found] < 3 * max(1, counts[expected]):
        return None
    return _hit("other_language", f"the answer is written in '{found}', the question expects '{expected}'", 0.0)


# -- length games ------------------------------------------------------------------------------
def repetition(view: AnswerView) -> Detection | None:
    """The same text repeated over and over."""
    norms = view.norms
    if len(norms) < 30:
        return None
    grams = list(zip(*(norms[i:] for i in range(5))))
    distinct = len(set(grams)) / len(grams)
    sentences = Counter(tuple(norms[s:e]) for s, e in view.analysis.sentences)
    top = max(sentences.values())
    if distinct < 0.35 or top >= 5:
        return _hit("repetition", f"the answer repeats itself ({top} copies of one sentence)" if top >= 5
                    else "the answer repeats the same words over and over", PARTIAL_CAP)
    return None


def filler_words(view: AnswerView) -> Detection | None:
    """Stock adjectives and adverbs stuffed into an answer ("Clearly, the crucial key ..."): at most partial credit.

    Words the question or the model answer use are not filler there. Honest answers use a few
    such words in a long text; on SAF-en and SAF-de no graded answer reaches this density.
    """
    filler = _fillers(view.analysis.language)
    own = view.reference.words if view.question is not None else frozenset()
    words = [w for w in view.analysis.words if w.norm.isalpha()]
    count = sum(w.norm in filler and w.norm not in own and w.stem not in view.prompt_stems for w in words)
    if count >= 2 and count >= FILLER_SHARE * len(words):
        return _hit("filler_words", f"{count} of the answer's {len(words)} words are stock adjectives and adverbs "
                    "that add nothing", PARTIAL_CAP)
    return None


def off_topic(view: AnswerView) -> Detection | None:
    """The answer is about something else ("I really enjoyed this module"): no points, and a human looks.

    All at once: its embedding is far from the prompt and from every reference answer, it states
    no key phrase or misconception, it uses no content word of the question, and at most one of
    the model answer's (and under a quarter of its own).
    On-topic answers, wrong ones included, share the question's subject and its words.
    """
    signals = view.signals
    if not view.prompt_stems and not view.reference_stems:
        return None
    if view.analysis.language != "en":  # the default encoder is English: its cosines of other texts run low
        return None
    if view.key_found or signals.get("misconception", 0.0) >= 0.5:
        return None
    if max(signals.get("ref_sim", 0.0), signals.get("q_sim", 0.0)) >= OFF_TOPIC_SIM:
        return None
    stems = _content(view.analysis, 0, len(view.analysis.words))
    if len(stems) < 3:
        return None
    if stems & view.prompt_stems:  # "The problem with DQDB is fairness": a word of the question, on its subject
        return None
    shared = len(stems & view.reference_stems)
    if shared > OFF_TOPIC_SHARED or shared / len(stems) >= OFF_TOPIC_SHARE:
        return None
    return _hit("off_topic", "the answer is not about the question", 0.0)


@lru_cache(maxsize=16)
def _fillers(language: str) -> frozenset:
    """English filler words and the language's own."""
    return FILLER_WORDS["en"] | FILLER_WORDS.get(language, frozenset())


def padding(view: AnswerView) -> Detection | None:
    """Much of the answer is text unrelated to the question (relevance of each sentence)."""
    topic = view.prompt_stems | view.reference_stems
    a = view.analysis
    if not topic or len(a.words) < 80:
        return None
    off_words = 0
    for s, e in a.sentences:
        stems = _content(a, s, e)
        if len(stems) >= 4 and len(stems & topic) / len(stems) < 0.15:
            off_words += e - s
    if off_words >= 100 and off_words / len(a.words) >= 0.3:
        return _hit("padding", f"{off_words} of the answer's {len(a.words)} words are unrelated to the question",
                    PARTIAL_CAP)
    return None


# -- meaning ---------------------------------------------------------------------------------
def _terse_copy(norms: list[str], ref: _Reference, stop) -> bool:
    """Model-answer words with every function word stripped: "Diameter, decreases, factor, 300m, 30m".

    Short model answers leave too few words for the list test below, so a short answer is a
    copied list when it has no function word at all, nearly all its words come from a model
    answer that does have them, and it repeats most of that answer's content words.
    """
    if any(n in stop for n in norms) or not any(w in stop for w in ref.words):
        return False
    from_ref = [n for n in norms if n in ref.words]
    content = {w for w in ref.words if w not in stop}
    return len(from_ref) >= 0.8 * len(norms) and len(set(from_ref)) >= 0.6 * len(content)


def contradiction(view: AnswerView) -> Detection | None:
    """Sentences that restate a model-answer sentence but negate its words: they claim the opposite."""
    if view.question is None:
        return None
    a = view.analysis
    ref = view.reference
    agree = contradict = 0
    for s, e in a.sentences:
        stems = _content(a, s, e)
        if not stems:
            continue
        best = max(ref.sentences, key=lambda r: len(stems & r[0]) / max(1, len(r[0])), default=None)
        if best is None:
            continue
        ref_stems = best[0]
        shared = stems & ref_stems
        # It restates that sentence: most of it, or a part of it in hardly any other words.
        restates = len(shared) / len(ref_stems) >= 0.6 and len(shared) / len(stems) >= 0.5
        if len(ref_stems) < 4 or len(shared) < 4 or not (restates or len(shared) / len(stems) >= 0.7):
            continue
        # Two or more of the sentence's shared words negated where the model answer asserts them.
        if len((_negated(a, s, e) & shared) - ref.negated) >= 2:
            contradict += 1
        else:
            agree += 1
    if not contradict:
        return None
    reason = f"{contradict} statement(s) of the answer contradict the model answer (a misconception)"
    # Outnumbered by agreeing statements, a contradiction still keeps the answer below acceptance.
    return _hit("contradiction", reason, 0.0 if contradict >= agree else PARTIAL_CAP)


DETECTORS: list[Detector] = [restates_question, random_characters, gibberish, keyword_list, shuffled_words,
                             prompt_injection, markup, other_language, repetition, off_topic, filler_words, padding,
                             contradiction]
_EXPLAINED_BY_OFF_TOPIC = {"filler_words", "padding"}  # an answer about something else is not stuffed or padded


def detect(view: AnswerView) -> list[Detection]:
    """Run every registered detector on one answer."""
    found = []
    for detector in DETECTORS:
        hit = detector(view)
        if hit is not None:
            found.append(hit)
    if any(d.flag.code == "off_topic" for d in found):
        found = [d for d in found if d.flag.code not in _EXPLAINED_BY_OFF_TOPIC]
    return found


def cap_of(detections: list[Detection]) -> float:
    """The tightest cap among ``detections``."""
    return min((d.cap for d in detections), default=1.0)
