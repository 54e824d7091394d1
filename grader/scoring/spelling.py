"""Misspelt answer words read as the question's own words: "gradiant" as "gradient", "weigth" as "weight".

A word of an answer that is no English word of the encoder's vocabulary, and one edit (a letter
added, dropped, changed, or two neighbours swapped) from exactly one word family of the
question's texts, counts as that family when concepts are matched word by word. Short words
are left alone: one edit turns too many of them into others. A clipped word ("grads",
"params") takes the one family of the question's words it begins (phrases.py).
"""

from __future__ import annotations

from grader.scoring.lexicon import encoder_vocabulary
from grader.scoring.roles import root
from grader.text import Analysis

MIN_LENGTH = 5  # letters of the shortest word read as a misspelling


def spelling_vocabulary(analyses: list[Analysis]) -> dict[str, str]:
    """The content words of a question's texts (``analyses``) -> their word family."""
    out: dict[str, str] = {}
    for analysis in analyses:
        for w, content in zip(analysis.words, analysis.content):
            if content and w.norm.isalpha():
                out.setdefault(w.norm, root(w.stem))
    return out


def one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one insertion, deletion, substitution or swap of neighbours."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        return a[i + 1 :] == b[i + 1 :] or (i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i]
                                            and a[i + 2 :] == b[i + 2 :])
    return a[i + 1 :] == b[i:] if la > lb else a[i:] == b[i + 1 :]


def corrected_family(norm: str, vocabulary: dict[str, str]) -> str | None:
    """The word family of the one question word ``norm`` is a misspelling of, else None."""
    if len(norm) < MIN_LENGTH or not norm.isalpha() or norm in vocabulary:
        return None
    known = encoder_vocabulary()[0]
    if not known or norm in known:  # a word of its own ("present" is no misspelt "preserve")
        return None
    found = {f for w, f in vocabulary.items() if len(w) >= MIN_LENGTH and w[0] == norm[0] and one_edit(norm, w)}
    return found.pop() if len(found) == 1 else None
