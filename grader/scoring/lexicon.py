"""Word lists the detectors use, and language identification by function words.

``FUNCTION_WORDS`` tells which language an answer is written in;
:func:`encoder_vocabulary` and :func:`looks_random` tell words from non-words. ``FILLER_WORDS``
holds the stock adjectives and adverbs ("crucial", "clearly", "fundamental")
that pad an answer without saying anything; stuffing an answer with them is a
known way to fool graders (Filighera et al., 2023).
"""

from __future__ import annotations

import re
from functools import lru_cache

from grader.text import STOPWORDS, stem

# Function words per language: frequent, short, and rarely shared between these languages.
FUNCTION_WORDS = {
    "en": STOPWORDS["en"],
    "de": STOPWORDS["de"],
    "fr": frozenset("""le la les des du un une et est sont que qui dans pour par sur avec ce cette ces il elle nous
        vous ils elles pas ne plus mais ou donc car au aux se sa son ses leur été être avoir fait aussi très
        c'est n'est qu'il d'un d'une l'on cela ça comme""".split()),
    "es": frozenset("""el la los las del un una y es son que en por para con como pero más se su sus lo al esta
        este estos está están muy también cuando donde porque sin sobre entre ya hay fue ser tiene cada esa
        ese""".split()),
}


_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
# function word -> the languages it is one of: one dictionary lookup a word instead of a set per language
_LANGUAGES_OF = {w: tuple(lang for lang, fw in FUNCTION_WORDS.items() if w in fw)
                 for w in frozenset().union(*FUNCTION_WORDS.values())}


@lru_cache(maxsize=256)  # several detectors ask about the same answer
def answer_language(text: str) -> tuple[str | None, dict[str, int]]:
    """The language whose function words the text uses most (None when it gives too little evidence)."""
    counts = dict.fromkeys(FUNCTION_WORDS, 0)
    for word in _WORD.findall(text[:5000]):
        for lang in _LANGUAGES_OF.get(word.casefold().replace("’", "'"), ()):
            counts[lang] += 1
    best = max(counts, key=counts.get)
    second = max(v for k, v in counts.items() if k != best)
    if counts[best] < 4 or counts[best] < 2 * second:
        return None, counts
    return best, counts


# Words that make a clause of a piece of text: auxiliaries and modals (the finite verbs a closed
# list can hold), pronouns, subordinators, and negations, which assert something. A bare term
# ("additive updates with gating", "forget gate") holds none of them; "the gate keeps it" does.
CLAUSE_WORDS = {
    "en": frozenset("""is are was were be been being am isn't aren't wasn't weren't do does did don't doesn't didn't
        has have had hasn't haven't hadn't can could will would shall should may might must cannot can't won't
        wouldn't shouldn't couldn't it's there's that's i you he she it we they this these that those there which
        who whom whose what where when why how because since although though if unless whereas so than then thus
        therefore hence no not never without nothing none""".split()),
    "de": frozenset("""ist sind war waren wird werden wurde wurden sein hat haben hatte hatten kann können konnte muss
        müssen musste soll sollen sollte darf dürfen will wollen es er sie wir ich du man mich dich sich mir dir uns
        euch dies diese dieser dieses dass daß weil da wenn ob obwohl damit sodass deshalb denn welche welcher
        welches der die das zu nicht kein keine keinen ohne nie""".split()),
}
# A question that asks for a list ("Name ...", "State 4 objectives", "Worauf sollst du achten?")
# and for no explanation or definition ("why", "how", "what is") may be answered with one.
ASKS_FOR_LIST = re.compile(r"\b(?:name|list|enumerate|state|give|mention|identify|nenne\w*|zähle\w*|worauf|"
                           r"welche)\b", re.IGNORECASE)
ASKS_FOR_REASONS = re.compile(r"\b(?:why|how|explain\w*|describe\w*|what\s+is|what's|where|warum|wieso|weshalb|"
                              r"wie|was\s+ist|erkläre\w*|beschreibe\w*|begründe\w*)\b", re.IGNORECASE)

# A model answer (or its prompt) that offers alternatives ("One of the following justifications should be
# given", "Possible challenges: 1. ...", "Alternatively, ...", "State at least 4 of the differences"): an answer
# need not state all of its sentences. An example inside one point ("e.g.", "such as") offers none.
OFFERS_ALTERNATIVES = re.compile(r"\b(?:(?:any\s+(?:one\s+)?|one\s+)of\s+the\s+following|possible\s+\w+\s*:|"
                                 r"alternatively|at\s+least\s+(?:\d+|one|two|three|four|five|six)\s+of\b|"
                                 r"eine[rnms]?\s+der\s+folgenden|mögliche\s+\w+\s*:|alternativ\b)",
                                 re.IGNORECASE)

_ENGLISH_FILLER = """important importantly crucial crucially key essential essentially significant significantly major
    critical critically vital fundamental fundamentally central main primary basic basically efficient efficiently
    effective effectively robust precise precisely accurate accurately correct correctly proper properly optimal
    optimally reliable reliably relevant clear clearly obvious obviously great excellent perfect perfectly complete
    completely comprehensive appropriate appropriately powerful remarkable remarkably notable notably considerable
    considerably substantial substantially necessary necessarily really very truly certainly definitely generally
    actually indeed simply absolutely extremely highly particularly especially naturally surely undoubtedly
    evidently"""
FILLER_WORDS = {
    "en": frozenset(_ENGLISH_FILLER.split()),
    "de": frozenset("""wichtig wichtige wichtigen wichtiger entscheidend entscheidende entscheidenden wesentlich
        wesentliche wesentlichen grundlegend grundlegende grundlegenden zentral zentrale zentralen effizient
        effiziente effizienten präzise präzisen korrekt korrekte korrekten optimal optimale optimalen zuverlässig
        zuverlässige zuverlässigen offensichtlich eindeutig natürlich sicherlich definitiv grundsätzlich
        eigentlich wirklich äußerst besonders absolut""".split()),
}


@lru_cache(maxsize=1)
def encoder_vocabulary() -> tuple[frozenset, frozenset]:
    """Whole English words of the encoder's vocabulary, and their stems (empty when it cannot be read)."""
    try:
        from grader.encoding.weights import resolve_model

        path = resolve_model(None)[0] / "vocab.txt"
        words = {w.strip() for w in path.read_text(encoding="utf-8").splitlines()}
    except Exception:  # no vocabulary: the character heuristics still work
        return frozenset(), frozenset()
    words = {w for w in words if w.isalpha() and len(w) > 1}
    return frozenset(words), frozenset(stem(w) for w in words)


_VOWELS = set("aeiouyäöüéèêàáíóúâîôû")
_TOKEN_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


@lru_cache(maxsize=65_536)  # answers reuse their words; the regexes cost ~50 µs a token
def looks_random(token: str) -> bool:
    """A token no writer would type: symbols inside letters, letters mixed with digits, case flips, no vowels."""
    core = _TOKEN_EDGE.sub("", token)
    if len(core) < 3:
        return False
    letters = [c for c in core if c.isalpha()]
    digits = sum(c.isdigit() for c in core)
    flips = sum(a.islower() and b.isupper() for a, b in zip(core, core[1:]))
    no_vowel = core.isalpha() and not (_VOWELS & {c.lower() for c in letters})
    consonant_run = max((len(r) for r in re.findall(r"[^aeiouy\W\d_]+", core.lower())), default=0)
    odd = sum(c in "#$%&@~!?|\\{}`" for c in core)  # characters no word or formula has inside it
    interleaved = re.search(r"[^\W\d_]+\d+[^\W\d_]+|\d+[^\W\d_]+\d+", core) is not None
    return bool((odd and (letters or digits)) or interleaved
                or flips >= 2 or (no_vowel and len(core) >= 5) or consonant_run >= 5)
