"""The grading engine: rubric + answer -> signals -> combiner -> result.

``Grader(rubric).grade(question_id, answer)`` grades one answer;
``grade_many`` grades a batch with one encoder pass over its distinct answers.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
import weakref
from collections import OrderedDict, deque
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from grader.blas_threads import limit_blas_threads
from grader.choice import grade_choice
from grader.detectors import AnswerView, cap_of, detect
from grader.embedder import Embedder, SentenceTransformerEmbedder, iter_encoding_lists
from grader.errors import ConfigError, ModelError
from grader.features import FEATURES, AnswerSignals, PreparedQuestion, answer_signals, key_credit, prepare_question
from grader.feedback import compose
from grader.linear_combiner import LinearCombiner
from grader.phrases import FOUND
from grader.result import ConceptResult, Flag, GradeResult, MisconceptionResult
from grader.rubric import Rubric, ShortAnswerQuestion
from grader.text import normalize
from grader.workers import CHUNK, MIN_ANSWERS, GradingPool, auto_workers, grade_items

log = logging.getLogger(__name__)

DEFAULT_COMBINER = Path(__file__).resolve().parent.parent / "models" / "default.json"
REVIEW_THRESHOLD = 0.6
MAX_ANSWER_CHARS = 20_000
_PREPARED_CACHE = 256
# Distinct answers encoded per encoder call in a batch: at most this many, and at most this many
# characters, so the token vectors held at once stay near 100 MB however long the answers are.
# A larger pool sorts into batches of more even length: short answers encode 10-15% faster at
# 2048 than at 256 (int8, bench/throughput.py's generated corpus).
ENCODE_CHUNK = 2048
ENCODE_CHUNK_CHARS = 250_000

_embedders: dict[tuple, SentenceTransformerEmbedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(model: str | None = None, device: str | None = None, backend: str = "auto",
                 batch_size: int | None = None) -> SentenceTransformerEmbedder:
    """One shared embedder per (model, device, backend, batch size) in this process, loaded lazily."""
    key = (model, device, backend, batch_size)
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = SentenceTransformerEmbedder(model, device=device, backend=backend,
                                                          batch_size=batch_size)
        return _embedders[key]


def load_combiner(path: str | Path | None = None) -> LinearCombiner:
    """The combiner at ``path``, or the default one shipped in ``models/default.json``."""
    combiner = LinearCombiner.load(path or DEFAULT_COMBINER)
    if list(combiner.feature_names_) != list(FEATURES):
        raise ModelError(
            f"combiner was trained on features {combiner.feature_names_}, but this grader computes "
            f"{list(FEATURES)}; retrain it with `grader train`", source=str(path or DEFAULT_COMBINER))
    return combiner


def snap(points: float, step: float, max_points: float) -> float:
    """Round ``points`` half-up to a multiple of ``step`` inside [0, max_points]."""
    snapped = math.floor(points / step + 0.5 + 1e-9) * step
    return float(round(min(max(snapped, 0.0), max_points), 6))


def _chunks(keys: list, size: Callable[[object], int]):
    """Consecutive runs of ``keys`` within ENCODE_CHUNK keys and ENCODE_CHUNK_CHARS of ``size``."""
    chunk, chars = [], 0
    for key in keys:
        n = size(key)
        if chunk and (len(chunk) == ENCODE_CHUNK or chars + n > ENCODE_CHUNK_CHARS):
            yield chunk
            chunk, chars = [], 0
        chunk.append(key)
        chars += n
    if chunk:
        yield chunk


def _interpolate(fraction: float, values: np.ndarray) -> np.ndarray:
    """A distribution over labels whose expected value is ``fraction`` (mass on the two nearest labels)."""
    order = np.argsort(values)
    v = values[order]
    out = np.zeros(len(values))
    fraction = min(max(fraction, v[0]), v[-1])
    k = int(np.searchsorted(v, fraction, side="right")) - 1
    if k >= len(v) - 1:
        out[order[-1]] = 1.0
    else:
        span = v[k + 1] - v[k]
        w = (fraction - v[k]) / span if span > 0 else 0.0
        out[order[k]] = 1.0 - w
        out[order[k + 1]] = w
    return out


class Grader:
    """Grades answers to the questions of a rubric.

    ``combiner`` is a fitted :class:`~grader.linear_combiner.LinearCombiner` (a
    :class:`~grader.combiner.GradeCombiner` is one) or the path of one (default:
    ``models/default.json``); ``embedder`` defaults to the shared
    all-MiniLM-L6-v2 encoder on CUDA when present, else CPU. ``workers`` is the number
    of processes that grade encoded answers of large calls (:mod:`grader.workers`);
    ``"auto"``: none on a CPU, where the encoder sets the pace, every core but one
    beside a GPU.
    """

    def __init__(self, rubric: Rubric | None = None, *, embedder: Embedder | None = None,
                 combiner: LinearCombiner | str | Path | None = None, model: str | None = None,
                 device: str | None = None, backend: str = "auto", review_threshold: float = REVIEW_THRESHOLD,
                 max_answer_chars: int = MAX_ANSWER_CHARS, workers: int | str = "auto"):
        limit_blas_threads()
        if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise ConfigError(f"workers must be 'auto' or a whole number >= 0. Got {workers!r}.", field="workers")
        self.rubric = rubric
        self.embedder = embedder if embedder is not None else get_embedder(model, device, backend)
        if combiner is None or isinstance(combiner, (str, Path)):
            combiner = load_combiner(combiner)
        self.combiner = combiner
        self.review_threshold = review_threshold
        self.max_answer_chars = max_answer_chars
        self.language = rubric.language if rubric else "en"
        fractions = dict(zip((str(c) for c in combiner.classes_), combiner.label_fractions_))
        self._label_fractions = fractions
        self._prepared: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._checked_model = False
        self.workers = workers
        self._pool: GradingPool | None = None
        self._pool_key: tuple | None = None

    @classmethod
    def for_signals(cls, embedder: Embedder | None = None, label_fractions: dict[str, float] | None = None,
                    max_answer_chars: int = MAX_ANSWER_CHARS) -> "Grader":
        """A grader that computes signals only (no combiner yet), for training."""
        limit_blas_threads()
        self = cls.__new__(cls)
        self.rubric, self.combiner = None, None
        self.embedder = embedder if embedder is not None else get_embedder()
        self.review_threshold, self.max_answer_chars, self.language = REVIEW_THRESHOLD, max_answer_chars, "auto"
        self._label_fractions = dict(label_fractions or {})
        self._prepared, self._lock = OrderedDict(), threading.Lock()
        self._checked_model = True
        self.workers, self._pool, self._pool_key = 0, None, None
        return self

    @classmethod
    def for_results(cls, combiner: LinearCombiner, review_threshold: float = REVIEW_THRESHOLD,
                    max_answer_chars: int = MAX_ANSWER_CHARS) -> "Grader":
        """A grader without an encoder that grades encoded answers to prepared questions (a grading worker's)."""
        self = cls.for_signals(embedder=_NoEncoder(), max_answer_chars=max_answer_chars)
        self.combiner, self.review_threshold = combiner, review_threshold
        return self

    # -- public API ---------------------------------------------------------------------
    def grade(self, question_id: str, answer: str | None) -> GradeResult:
        """Grade one answer to question ``question_id`` of the rubric."""
        return self.grade_many([(question_id, answer)])[0]

    def grade_many(self, items: Iterable[tuple[str, str | None]]) -> list[GradeResult]:
        """Grade (question_id, answer) pairs; each distinct answer is encoded once, in one batch."""
        if self.rubric is None:
            raise ModelError("this Grader has no rubric; use grade_answers(question, answers)")
        items = list(items)
        questions = [self.rubric.question(qid) for qid, _ in items]
        return self._grade(list(zip(questions, (a for _, a in items))))

    def grade_answers(self, question, answers: Sequence[str | None]) -> list[GradeResult]:
        """Grade answers to one question object (which need not be in the rubric)."""
        return self._grade([(question, a) for a in answers])

    def grade_pairs(self, pairs: Sequence[tuple[object, str | None]]) -> list[GradeResult]:
        """Grade (question object, answer) pairs, for callers that mix rubrics or inline questions."""
        return self._grade(list(pairs))

    def prepare(self, question: ShortAnswerQuestion) -> PreparedQuestion:
        """The question's cached vectors, computed on first use."""
        with self._lock:
            prepared = self._prepared.get(question)
            if prepared is not None:
                self._prepared.move_to_end(question)
                return prepared
        if not self._checked_model and self.combiner is not None:
            self._check_combiner_model()
        prepared = prepare_question(question, self.embedder, self.language, self._label_fractions)
        with self._lock:
            self._prepared[question] = prepared
            while len(self._prepared) > _PREPARED_CACHE:
                self._prepared.popitem(last=False)
        return prepared

    def _check_combiner_model(self) -> None:
        """Warn when the combiner was trained on another encoder's signals."""
        self._checked_model = True
        trained_on = (getattr(self.combiner, "metadata_", None) or {}).get("embedding_model")
        self.embedder.load()
        if trained_on and trained_on != self.embedder.name:
            warnings.warn(f"the combiner was trained on signals of '{trained_on}' but the encoder is "
                          f"'{self.embedder.name}'; retrain it with `grader train --model ...` for best agreement",
                          stacklevel=3)

    def signals(self, question: ShortAnswerQuestion, answers: Sequence[str],
                exclude_examples: Sequence[int | None] | None = None) -> list[AnswerSignals]:
        """Signals of each answer, for training and evaluation; one encoder pass."""
        prepared = self.prepare(question)
        texts = [self.clip(a)[0] for a in answers]
        encodings = self.encode_answers(texts)
        exclude = exclude_examples or [None] * len(texts)
        return [answer_signals(prepared, t, encodings[t], x) for t, x in zip(texts, exclude)]

    def close(self) -> None:
        """Stop this grader's grading processes, if it started any (they also stop when it is collected)."""
        if self._pool is not None:
            self._pool.close()
            self._pool, self._pool_key = None, None

    # -- internals ----------------------------------------------------------------------
    def clip(self, answer: str | None) -> tuple[str, bool]:
        """The answer cut to ``max_answer_chars``, and whether it was cut."""
        text = answer or ""
        if len(text) > self.max_answer_chars:
            return text[: self.max_answer_chars], True
        return text, False

    def encode_answers(self, texts: Iterable[str]) -> dict:
        """Encodings of the distinct non-blank texts, keyed by text, in one encoder pass."""
        distinct = list(dict.fromkeys(t for t in texts if t.strip()))
        return dict(zip(distinct, self.embedder.encode_tokens(distinct)))

    def _grade(self, pairs: list[tuple[object, str | None]]) -> list[GradeResult]:
        results: list[GradeResult | None] = [None] * len(pairs)
        pending: dict[tuple, list[int]] = {}
        clipped: dict[int, tuple[str, bool]] = {}
        for i, (question, answer) in enumerate(pairs):
            if not isinstance(question, ShortAnswerQuestion):
                results[i] = grade_choice(question, answer or "")
                continue
            text, truncated = self.clip(answer)
            clipped[i] = (text, truncated)
            if not normalize(text):
                results[i] = self._empty(question, truncated)
                continue
            # Identical answers (up to case and spacing) to the same question are graded once.
            pending.setdefault((question, normalize(text), truncated), []).append(i)
        # Encode in chunks so token vectors of a huge batch are never all held at once, in one
        # stream, and grade each answer as soon as it is encoded: the encoder works on the next
        # ones meanwhile, across the seams between chunks too.
        keys_of: list[dict[str, list[tuple]]] = []  # per chunk; the same text may answer several questions
        for chunk in _chunks(list(pending), lambda key: len(clipped[pending[key][0]][0])):
            keys_of.append({})
            for key in chunk:
                keys_of[-1].setdefault(clipped[pending[key][0]][0], []).append(key)
        texts = [list(k) for k in keys_of]
        prepared: dict[int, PreparedQuestion] = {}  # by id: the questions stay alive in ``pairs``
        pooled = _Pooled(self, self._pool_for(len(pending)), prepared)
        for n, j, encoding in iter_encoding_lists(self.embedder, texts):
            text = texts[n][j]
            for key in keys_of[n][text]:
                question = key[0]
                if id(question) not in prepared:
                    prepared[id(question)] = self.prepare(question)
                if pooled.pool is not None:
                    pooled.add(key, text, encoding)
                    continue
                result = self._grade_short(question, text, encoding, key[2], prepared[id(question)])
                for i in pending[key]:
                    results[i] = result
        for key, result in pooled.finish():
            for i in pending[key]:
                results[i] = result
        return results  # type: ignore[return-value]

    def _pool_for(self, answers: int) -> GradingPool | None:
        """The grading processes for a call of ``answers`` distinct answers, or None to grade here."""
        if answers < MIN_ANSWERS or self.combiner is None or self.workers == 0:
            return None
        count = self.workers
        if count == "auto":
            if not getattr(self.embedder, "loaded", True):
                self.embedder.load()
            count = auto_workers(getattr(self.embedder, "device", None))
        if count == 0:
            return None
        key = (count, self.review_threshold, self.max_answer_chars)
        with self._lock:
            if self._pool is None or self._pool_key != key:
                if self._pool is not None:
                    self._pool.close()
                self._pool = GradingPool(count, self.combiner.to_dict(), self.review_threshold,
                                         self.max_answer_chars)
                self._pool_key = key
                weakref.finalize(self, self._pool.close)
            return self._pool

    def _pool_failed(self, exc: BaseException) -> None:
        """Grade in this thread from now on: the processes broke (one was killed, say)."""
        log.warning("the grading processes failed (%s: %s); grading in the calling thread instead",
                    type(exc).__name__, exc)
        pool, self._pool, self._pool_key, self.workers = self._pool, None, None, 0
        if pool is not None:
            try:
                pool.close()
            except Exception:  # noqa: BLE001 - a broken pool may fail to stop cleanly; it is dropped either way
                pass

    def _empty(self, question: ShortAnswerQuestion, truncated: bool) -> GradeResult:
        low = str(self.combiner.classes_[int(np.argmin(self.combiner.label_fractions_))])
        flags = (Flag("empty", "the answer is empty", review=False),)
        return GradeResult(question.id, question.type, 0.0, question.max_points, low, 1.0, False,
                           "No answer was given.", flags=flags)

    def _grade_short(self, question: ShortAnswerQuestion, text: str, encoding, truncated: bool,
                     prepared: PreparedQuestion | None = None) -> GradeResult:
        if prepared is None:
            prepared = self.prepare(question)
        sig = answer_signals(prepared, text, encoding)
        combiner = self.combiner
        values = combiner.label_fractions_
        proba = combiner.predict_proba(sig.features[None, :])[0]
        flags: list[Flag] = []
        if truncated:
            flags.append(Flag("truncated", f"the answer was cut to its first {self.max_answer_chars} characters"))

        concepts = []
        for kp, m in zip(question.key_phrases, sig.key_matches):
            concepts.append(ConceptResult(kp.text, kp.points, round(kp.points * key_credit(m), 4), m.found,
                                          m.strength, m.evidence, m.method, m.negated, kp.required))
        mixed = proba
        if concepts:
            total = sum(c.points for c in concepts)
            concept_fraction = sum(c.awarded for c in concepts) / total
            w = question.criteria_weight
            mixed = (1 - w) * proba + w * _interpolate(concept_fraction, values)
        fraction = float(mixed @ values)
        best = int(mixed.argmax())

        misconceptions = tuple(
            MisconceptionResult(mc.text, mc.penalty, m.strength, m.evidence, mc.feedback)
            for mc, m in zip(question.misconceptions, sig.misconception_matches) if m.strength >= FOUND
        )
        cap = 1.0
        penalty = sum(m.penalty for m in misconceptions) / question.max_points
        if misconceptions:
            flags.append(Flag("misconception", "the answer states a misconception", review=False))
        missing_required = [c for c in concepts if c.required and not c.found]
        if missing_required:
            cap = min(cap, 1.0 - sum(c.points - c.awarded for c in missing_required) / question.max_points)
            flags.append(Flag("missing_required", "a required concept is missing: "
                              + "; ".join(c.concept for c in missing_required), review=False))
        feature_values = sig.features.tolist()
        view = AnswerView(text, sig.analysis, dict(zip(FEATURES, feature_values)), prepared.prompt_stems,
                          prepared.reference_stems, sum(c.found for c in concepts), len(concepts), question)
        detections = detect(view)
        flags.extend(d.flag for d in detections)
        cap = min(cap, cap_of(detections))

        final = min(max(fraction - penalty, 0.0), cap)
        points = snap(final * question.max_points, question.step, question.max_points)
        label_index = best
        if final < fraction - 1e-9:  # a penalty or cap lowered the grade: the label follows it down
            nearest = int(np.argmin(np.abs(values - final)))
            if values[nearest] < values[best]:
                label_index = nearest
        if missing_required and values[label_index] >= values.max():
            lower = [i for i in np.argsort(-values) if values[i] < values.max()]
            label_index = int(lower[0]) if lower else label_index
        if points <= 0:
            label_index = int(np.argmin(values))
        label = str(combiner.classes_[label_index])
        confidence = float(mixed[label_index])
        if cap_of(detections) <= 0.0:
            confidence = max(confidence, 0.9)  # the detector is certain, the combiner's view does not matter
        needs_review = confidence < self.review_threshold or any(f.review for f in flags)
        hints = {kp.text: kp.hint for kp in question.key_phrases}
        feedback = compose(tuple(concepts), misconceptions, tuple(flags), hints,
                           feature_values[FEATURES.index("ref_cover")], label)
        return GradeResult(
            question_id=question.id,
            question_type=question.type,
            points=points,
            max_points=question.max_points,
            label=label,
            confidence=round(min(max(confidence, 0.0), 1.0), 4),
            needs_review=needs_review,
            feedback=feedback,
            concepts=tuple(concepts),
            misconceptions=misconceptions,
            flags=tuple(flags),
            signals={k: round(v, 4) for k, v in zip(FEATURES, feature_values)},
            probabilities={str(c): round(p, 4) for c, p in zip(combiner.classes_, mixed.tolist())},
        )


class _Pooled:
    """One call's encoded answers on their way through the grading processes, a question's chunk at a time.

    At most two chunks a worker are out at once, so the encodings held stay bounded. A chunk
    whose worker fails is graded in the calling thread, so no answer is lost.
    """

    def __init__(self, grader: Grader, pool: GradingPool | None, prepared: dict[int, PreparedQuestion]):
        self.grader, self.pool, self.prepared = grader, pool, prepared
        self._buffers: dict[int, list[tuple]] = {}
        self._out: deque = deque()  # (future, chunk) in the order sent
        self._done: list[tuple[tuple, GradeResult]] = []

    def add(self, key: tuple, text: str, encoding) -> None:
        buffer = self._buffers.setdefault(id(key[0]), [])
        buffer.append((key, text, encoding))
        if len(buffer) == CHUNK:
            self._send(self._buffers.pop(id(key[0])))

    def finish(self) -> list[tuple[tuple, GradeResult]]:
        """(key, result) of every answer added."""
        for chunk in self._buffers.values():
            self._send(chunk)
        self._buffers.clear()
        while self._out:
            self._collect()
        return self._done

    def _send(self, chunk: list[tuple]) -> None:
        future = None
        if self.pool is not None:
            try:
                future = self.pool.submit(self._prepared_of(chunk), _items(chunk))
            except RuntimeError as exc:  # BrokenProcessPool is one, and so is a pool already shut down
                self.grader._pool_failed(exc)
                self.pool = None
        self._out.append((future, chunk))
        while self._out and (self.pool is None or len(self._out) > 2 * self.pool.workers):
            self._collect()

    def _collect(self) -> None:
        future, chunk = self._out.popleft()
        results = None
        if future is not None:
            try:
                results = future.result()
            except Exception as exc:  # noqa: BLE001 - whatever broke (a cancelled future too), graded here instead
                if self.pool is not None:
                    self.grader._pool_failed(exc)
                    self.pool = None
        if results is None:
            results = grade_items(self.grader, self._prepared_of(chunk), _items(chunk))
        self._done.extend((key, result) for (key, _, _), result in zip(chunk, results))

    def _prepared_of(self, chunk: list[tuple]) -> PreparedQuestion:
        return self.prepared[id(chunk[0][0][0])]  # every answer of a chunk is to one question


def _items(chunk: list[tuple]) -> list[tuple]:
    """``(text, encoding, truncated)`` of each ``(key, text, encoding)`` of a chunk."""
    return [(text, encoding, key[2]) for key, text, encoding in chunk]


class _NoEncoder:
    """The encoder of a grader that only grades encoded answers: asked to encode, it says so."""

    name, sha256, device, loaded = None, None, None, True

    def encode(self, texts):
        raise ModelError("this grader grades encoded answers only; it has no encoder")

    encode_tokens = encode
