"""Inline questions in the service: their limits, and their preparation cut into small model calls.

An inline question is prepared (its texts encoded) before its answer is graded. A large one
would hold the model thread for its whole preparation, so the service plans the texts that
preparation encodes (:func:`question_texts`), encodes them a few at a time in batches shared
with other requests, and keeps the vectors in a :class:`PrecomputedEncoder` until the engine's
``prepare`` asks for them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

import numpy as np

from grader.errors import LimitError

_TEXT_OVERHEAD = 100  # bytes a cached text costs beyond its characters (object headers, dict slot)


def check_inline_limits(question, settings, field: str = "question") -> int:
    """422 naming the field and the setting when an inline question is over a limit; its size in characters.

    ``question`` is the request's :class:`~grader.api.schemas.InlineQuestion`. Checked
    before any work: key phrases and misconceptions per question (``max_key_phrases``),
    alternatives of each (``max_alternatives``), the length of each reference answer
    (``max_answer_chars``) and the question's characters in all (``max_question_chars``).
    """
    s = settings
    for name in ("key_phrases", "misconceptions"):
        entries = getattr(question, name)
        if len(entries) > s.max_key_phrases:
            raise LimitError(f"field '{field}.{name}' holds {len(entries)} entries; the limit is "
                             f"{s.max_key_phrases} (GRADER_MAX_KEY_PHRASES).", field=f"{field}.{name}")
        for i, entry in enumerate(entries):
            if len(entry.alternatives) > s.max_alternatives:
                where = f"{field}.{name}[{i}].alternatives"
                raise LimitError(f"field '{where}' holds {len(entry.alternatives)} alternatives; the limit is "
                                 f"{s.max_alternatives} (GRADER_MAX_ALTERNATIVES).", field=where)
    for i, reference in enumerate(question.reference_answers):
        if len(reference) > s.max_answer_chars:
            where = f"{field}.reference_answers[{i}]"
            raise LimitError(f"field '{where}' is {len(reference)} characters long; the limit is "
                             f"{s.max_answer_chars} (GRADER_MAX_ANSWER_CHARS).", field=where)
    size = question_chars(question)
    if size > s.max_question_chars:
        raise LimitError(f"field '{field}' holds {size} characters of text; the limit is {s.max_question_chars} "
                         "(GRADER_MAX_QUESTION_CHARS).", field=field)
    return size


def question_chars(question) -> int:
    """Characters of every text of a question: prompt, references, key phrases, misconceptions and their notes."""
    texts = [question.prompt, *question.reference_answers]
    for kp in question.key_phrases:
        texts += [kp.text, *kp.alternatives, kp.hint or "", *(e.text for e in kp.examples)]
    for mc in question.misconceptions:
        texts += [mc.text, *mc.alternatives, mc.feedback or "", *(e.text for e in mc.examples)]
    return sum(len(t) for t in texts)


def question_texts(question, language: str) -> list[str]:
    """The distinct texts :func:`~grader.scoring.features.prepare_question` encodes for ``question``.

    The same list it builds (prompt, references, their sentences, key-phrase and misconception
    phrasings); a text missing here is simply encoded during ``prepare`` instead, in one piece.
    """
    from grader.text import analyze, detect_language

    language = question.language or language
    if language == "auto":
        language = detect_language(" ".join([question.prompt, *question.reference_answers]))
    texts = [question.prompt] if question.prompt.strip() else []
    texts += list(question.reference_answers)
    for reference in question.reference_answers:
        analysis = analyze(reference, language)
        texts += [analysis.span_text(s, e) for s, e in analysis.sentences]
    for entry in (*question.key_phrases, *question.misconceptions):
        texts += [entry.text, *entry.alternatives, *(e.text for e in entry.examples if e.states)]
    for entry in (*question.key_phrases, *question.misconceptions):
        texts += [e.text for e in entry.examples if not e.states]
    return list(dict.fromkeys(texts))


def chunks(texts: Sequence[str], max_chars: int) -> list[list[str]]:
    """Consecutive runs of ``texts`` of at most ``max_chars`` characters (a longer text forms its own run)."""
    out: list[list[str]] = []
    size = 0
    for text in texts:
        if not out or (out[-1] and size + len(text) > max_chars):
            out.append([])
            size = 0
        out[-1].append(text)
        size += len(text)
    return out


class PrecomputedEncoder:
    """An encoder that answers ``encode`` from vectors computed earlier by :meth:`precompute`.

    Everything else (answers' token encodings, the model's name and device) goes to the wrapped
    ``embedder``. Each stored vector is used once and dropped; the store holds at most
    ``max_bytes`` (the least recently stored go first), so an abandoned preparation cannot grow it.
    """

    def __init__(self, embedder, max_bytes: int = 16_000_000):
        self.embedder = embedder
        self.max_bytes = max_bytes
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        if name == "embedder":  # not set yet (during unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.embedder, name)

    @property
    def stored_bytes(self) -> int:
        """Estimated bytes of the vectors waiting to be used."""
        return self._bytes

    @staticmethod
    def _size(text: str, vector: np.ndarray) -> int:
        return vector.nbytes + len(text) + _TEXT_OVERHEAD

    def precompute(self, texts: Sequence[str]) -> None:
        """Encode ``texts`` now and keep their vectors for a later :meth:`encode`."""
        texts = [t for t in dict.fromkeys(texts)]
        if not texts:
            return
        vectors = self.embedder.encode(texts)
        with self._lock:
            for text, vector in zip(texts, vectors):
                old = self._vectors.pop(text, None)
                if old is not None:
                    self._bytes -= self._size(text, old)
                vector = np.array(vector, copy=True)  # not a view that keeps the whole batch alive
                self._vectors[text] = vector
                self._bytes += self._size(text, vector)
            while self._bytes > self.max_bytes and self._vectors:
                text, vector = self._vectors.popitem(last=False)
                self._bytes -= self._size(text, vector)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts``: the precomputed ones, and the rest encoded now."""
        texts = list(texts)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.pop(text, None)
                if vector is not None:
                    found[text] = vector
                    self._bytes -= self._size(text, vector)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if not found:
            return self.embedder.encode(texts)
        if missing:
            found.update(zip(missing, self.embedder.encode(missing)))
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)
