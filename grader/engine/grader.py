"""The grading engine: rubric + answer -> signals -> combiner -> result.

``Grader(rubric).grade(question_id, answer)`` grades one answer;
``grade_many`` grades a batch with one encoder pass over its distinct answers.
"""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from grader.encoding.blas_threads import limit_blas_threads
from grader.encoding.embedder import Embedder, iter_encoding_lists
from grader.encoding.registry import get_embedder
from grader.errors import ConfigError, ModelError
from grader.result import GradeResult
from grader.rubric import Rubric, ShortAnswerQuestion
from grader.scoring.choice import grade_choice
from grader.scoring.combiner import LinearCombiner, extra_signal_names
from grader.scoring.features import AnswerSignals, PreparedQuestion, answer_signals, prepare_question
from grader.scoring.policy import MAX_ANSWER_CHARS, REVIEW_THRESHOLD, empty_result, score_answer
from grader.text import normalize, valid_text
from grader.engine.workers import MIN_ANSWERS, GradingPool, PooledCall, auto_workers
from grader.engine.scorer import grades_alone, load_combiner_spec, scorer_signals

log = logging.getLogger(__name__)

_PREPARED_CACHE = 256
# Prepared questions are also bounded by an estimate of their bytes: a question with a long reference
# answer holds a vector for each of its sentences, so 256 of them could take gigabytes.
_PREPARED_CACHE_BYTES = 256 * 2**20
_STR_BYTES = 56  # what a short Python str costs beyond its characters
# Distinct answers encoded per encoder call in a batch: at most this many, and at most this many
# characters, so the token vectors held at once stay near 100 MB however long the answers are.
# A larger pool sorts into batches of more even length: short answers encode 10-15% faster at
# 2048 than at 256 (int8, bench/throughput.py's generated corpus).
ENCODE_CHUNK = 2048
ENCODE_CHUNK_CHARS = 250_000

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


def estimate_bytes(prepared: PreparedQuestion) -> int:
    """An estimate of the memory ``prepared`` holds: its arrays (each buffer once) and its texts and stems."""
    arrays = [prepared.topic, prepared.references, prepared.prompt_vector, prepared.example_vectors,
              prepared.example_fractions]
    for bank in (prepared.reference_tokens, prepared.example_tokens):
        if bank is not None:
            arrays += [bank.rows, bank.starts, bank.lengths]
    stems = [prepared.reference_stems, prepared.prompt_stems]
    texts = [prepared.question.prompt, *getattr(prepared.question, "reference_answers", ())]
    for targets in (prepared.reference_targets, prepared.key_targets, prepared.misconception_targets):
        arrays += [targets.matrix, targets.starts, targets.needed]
        for target in targets:
            arrays.append(target.vectors)
            stems += target.stems
            texts += target.texts
    buffers = {}
    for a in arrays:
        if isinstance(a, np.ndarray):
            base = a
            while isinstance(base.base, np.ndarray):
                base = base.base  # a view keeps its whole base alive
            buffers[id(base)] = base.nbytes
    words = sum(len(st) for st in stems)
    model = prepared.example_model.nbytes() if prepared.example_model is not None else 0
    return (sum(buffers.values()) + sum(len(t) + _STR_BYTES for t in texts)
            + words * (_STR_BYTES + 16) + len(stems) * 216 + model)


class Grader:
    """Grades answers to the questions of a rubric.

    ``combiner`` is a fitted :class:`~grader.scoring.combiner.LinearCombiner` (a
    :class:`~grader.evaluation.estimator.GradeCombiner` is one) or the path of one (default:
    ``models/default.json``); ``embedder`` defaults to the shared
    all-MiniLM-L6-v2 encoder on CUDA when present, else CPU. ``workers`` is the number
    of processes that grade encoded answers of large calls (:mod:`grader.engine.workers`);
    ``"auto"``: none on a CPU, where the encoder sets the pace, every core but one
    beside a GPU. ``cache_bytes`` bounds the memory of prepared questions kept for reuse
    (default 256 MiB, estimated by :func:`estimate_bytes`).

    ``combiner`` may also be a fine-tuned scorer folder (``grader train --finetune``): its
    manifest is checked, its combiner loaded and its cross-encoder (``scorer``, at
    ``scorer_precision``) adds the signals the combiner reads beyond the standard ones.
    """

    def __init__(self, rubric: Rubric | None = None, *, embedder: Embedder | None = None,
                 combiner: LinearCombiner | str | Path | None = None, model: str | None = None,
                 device: str | None = None, backend: str = "auto", review_threshold: float = REVIEW_THRESHOLD,
                 max_answer_chars: int = MAX_ANSWER_CHARS, workers: int | str = "auto",
                 cache_bytes: int | None = None, scorer=None, scorer_precision: str = "int8"):
        limit_blas_threads()
        if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise ConfigError(f"workers must be 'auto' or a whole number >= 0. Got {workers!r}.", field="workers")
        self.rubric = rubric
        self.embedder = embedder if embedder is not None else get_embedder(model, device, backend)
        loaded, combiner = load_combiner_spec(combiner, scorer_precision)
        self.combiner = combiner
        self.scorer = loaded if loaded is not None else scorer
        self._check_scorer()
        self.review_threshold = review_threshold
        self.max_answer_chars = max_answer_chars
        self.language = rubric.language if rubric else "en"
        fractions = dict(zip((str(c) for c in combiner.classes_), combiner.label_fractions_))
        self._label_fractions = fractions
        self._prepared: OrderedDict = OrderedDict()
        self._prepared_sizes: dict = {}
        self._cached_bytes = 0
        self.cache_bytes = _PREPARED_CACHE_BYTES if cache_bytes is None else cache_bytes
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
        self._prepared_sizes, self._cached_bytes, self.cache_bytes = {}, 0, _PREPARED_CACHE_BYTES
        self._checked_model = True
        self.workers, self._pool, self._pool_key = 0, None, None
        self.scorer = None
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
        """The question's cached vectors, computed on first use.

        The cache keeps the most recently used questions within 256 entries and ``cache_bytes``
        (estimated: the vectors' bytes and the texts'); a question larger than that is not kept.
        """
        with self._lock:
            prepared = self._prepared.get(question)
            if prepared is not None:
                self._prepared.move_to_end(question)
                return prepared
        if not self._checked_model and self.combiner is not None:
            self._check_combiner_model()
        prepared = prepare_question(question, self.embedder, self.language, self._label_fractions)
        size = estimate_bytes(prepared)
        with self._lock:
            if question not in self._prepared:
                self._prepared[question] = prepared
                self._prepared_sizes[question] = size
                self._cached_bytes += size
            while self._prepared and (len(self._prepared) > _PREPARED_CACHE or self._cached_bytes > self.cache_bytes):
                old, _ = self._prepared.popitem(last=False)
                self._cached_bytes -= self._prepared_sizes.pop(old)
        return prepared

    def is_prepared(self, question: ShortAnswerQuestion) -> bool:
        """Whether ``question``'s vectors are in the cache now."""
        with self._lock:
            return question in self._prepared

    @property
    def prepared_bytes(self) -> int:
        """Estimated bytes of the prepared questions in the cache."""
        return self._cached_bytes

    def _check_scorer(self) -> None:
        """The combiner's extra signals must be ones the scorer computes."""
        from grader.finetune import CE_SIGNALS

        extra = extra_signal_names(self.combiner)
        if extra and self.scorer is None:
            raise ModelError(f"the combiner reads the signals {list(extra)} of a fine-tuned scorer; load it from its "
                             "scorer folder (`combiner` = the folder `grader train --finetune` wrote)",
                             field="combiner")
        unknown = [n for n in extra if n not in CE_SIGNALS]
        if unknown:
            raise ModelError(f"the combiner reads signals {unknown} that no scorer computes (known: "
                             f"{list(CE_SIGNALS)})", field="combiner")

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

    @property
    def grading_processes(self) -> int:
        """Worker processes grading for this grader now: 0 while it grades in the calling thread."""
        return self._pool.workers if self._pool is not None else 0

    def worker_pids(self) -> list[int]:
        """Process ids of this grader's running grading processes (empty when it has none)."""
        return self._pool.pids() if self._pool is not None else []

    def close(self) -> None:
        """Stop this grader's grading processes, if it started any (they also stop when it is collected)."""
        if self._pool is not None:
            self._pool.close()
            self._pool, self._pool_key = None, None

    # -- internals ----------------------------------------------------------------------
    def clip(self, answer: str | None) -> tuple[str, bool]:
        """The answer cut to ``max_answer_chars`` and made valid Unicode, and whether it was cut.

        Every short answer enters the engine here; a lone surrogate (``"\\ud800"`` in JSON) becomes
        U+FFFD, which the tokenizer and the UTF-8 outputs accept.
        """
        text = answer or ""
        if len(text) > self.max_answer_chars:
            return valid_text(text[: self.max_answer_chars]), True
        return valid_text(text), False

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
                results[i] = grade_choice(question, valid_text(answer or ""))  # its flags quote the answer
                continue
            text, truncated = self.clip(answer)
            clipped[i] = (text, truncated)
            if not normalize(text):
                results[i] = empty_result(question, self.combiner)
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
        extra = self._extra_signals(list(pending), clipped, pending)
        prepared: dict[int, PreparedQuestion] = {}  # by id: the questions stay alive in ``pairs``
        # Prepared before encoding: a question with key phrases asks the encoder for its answers'
        # clauses too, and they must come in the answers' own encoder call.
        for key in pending:
            if id(key[0]) not in prepared:
                prepared[id(key[0])] = self.prepare(key[0])
        pooled = PooledCall(self._pool_for(len(pending)), prepared, self._grade_chunk, self._pool_failed)
        for n, j, encoding in iter_encoding_lists(self.embedder, texts):
            text = texts[n][j]
            for key in keys_of[n][text]:
                question = key[0]
                if id(question) not in prepared:
                    prepared[id(question)] = self.prepare(question)
                if pooled.pool is not None:
                    pooled.add(key, text, encoding)
                    continue
                result = self._grade_short(question, text, encoding, key[2], prepared[id(question)],
                                           extra.get(key))
                for i in pending[key]:
                    results[i] = result
        for key, result in pooled.finish():
            for i in pending[key]:
                results[i] = result
        return results  # type: ignore[return-value]

    def _extra_signals(self, keys: list[tuple], clipped: dict, pending: dict) -> dict:
        """The fine-tuned scorer's signals of each pending (question, answer) key, in one batched pass."""
        names = extra_signal_names(self.combiner) if self.combiner is not None else ()
        if self.scorer is None or not names:
            return {}
        texts = [clipped[pending[key][0]][0] for key in keys]
        return scorer_signals(self.scorer, [key[0] for key in keys], texts, names, keys, self._label_fractions)

    def _pool_for(self, answers: int) -> GradingPool | None:
        """The grading processes for a call of ``answers`` distinct answers, or None to grade here."""
        if answers < MIN_ANSWERS or self.combiner is None or self.workers == 0 or self.scorer is not None:
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

    def _grade_chunk(self, prepared: PreparedQuestion, items) -> list[GradeResult]:
        """Grades of ``(text, encoding, truncated)`` answers to ``prepared``'s question, in this thread."""
        return [self._grade_short(prepared.question, text, encoding, truncated, prepared)
                for text, encoding, truncated in items]

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

    def _grade_short(self, question: ShortAnswerQuestion, text: str, encoding, truncated: bool,
                     prepared: PreparedQuestion | None = None, extra: dict | None = None) -> GradeResult:
        if prepared is None:
            prepared = self.prepare(question)
        combiner = self.combiner
        if grades_alone(self.scorer, question):  # a question the fine-tuned scorer was not trained on
            combiner, extra = self.scorer.fallback, None
        return score_answer(prepared, text, encoding, combiner, truncated=truncated,
                            review_threshold=self.review_threshold, max_answer_chars=self.max_answer_chars,
                            extra_signals=extra)
