"""Grading in worker processes, for when the encoder outruns one core (a GPU).

Grading one encoded answer (spans, signals, detectors, the result) costs about a
millisecond of Python on one core, under the interpreter lock. On a CPU the encoder
costs several times that, so it sets the pace and grading in the grader's own
thread is right. On a GPU the encoder turns out thousands of answers a second and
one core of grading would cap the grader near a thousand. A :class:`GradingPool`
then grades in worker processes: the grader's process encodes and hands each
question's encoded answers to the workers, a chunk at a time with the question's
prepared vectors, while it encodes the next ones. The results are the ones the
grader's own thread computes: the same code runs on the same arrays.

Workers never load the model, tokenise or touch the GPU: each holds the combiner,
rebuilt from its JSON form, and the grading code. They start once, on the first call
large enough to use them. On Linux they are forked, as PyTorch's data loader workers
are, which is safe beside a CUDA parent for workers that never use CUDA, and which
never runs the caller's main script again; elsewhere they are spawned, and a script
that grades must then guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Sequence

import numpy as np

from grader.encoding.embedder import Encoding
from grader.result import GradeResult
from grader.scoring.combiner import LinearCombiner
from grader.scoring.features import PreparedQuestion
from grader.scoring.policy import score_answer

CHUNK = 64  # answers to one question handed to a worker at once
MIN_ANSWERS = 256  # calls with fewer answers are graded in the caller's thread: starting chunks costs more
MAX_WORKERS = 32
_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


def auto_workers(device: str | None) -> int:
    """Worker processes for ``workers="auto"``: none on a CPU, every core but one beside a GPU."""
    if not str(device or "").startswith("cuda"):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(MAX_WORKERS, cores - 1))


# -- inside a worker -----------------------------------------------------------------------------
_worker: tuple | None = None  # (combiner, review_threshold, max_answer_chars) of this worker


def _start_worker(combiner: dict, review_threshold: float, max_answer_chars: int) -> None:
    global _worker
    _worker = (LinearCombiner.from_dict(combiner, source="<grading pool>"), review_threshold, max_answer_chars)


def grade_chunk(prepared: PreparedQuestion, chunk: tuple) -> list[GradeResult]:
    """Grades of one chunk of encoded answers to ``prepared``'s question (see :func:`pack`), in a worker."""
    combiner, review_threshold, max_answer_chars = _worker
    return [score_answer(prepared, text, encoding, combiner, truncated=truncated, review_threshold=review_threshold,
                         max_answer_chars=max_answer_chars) for text, encoding, truncated in unpack(chunk)]


def pack(items: Sequence[tuple[str, Encoding, bool]]) -> tuple:
    """``(text, encoding, truncated)`` answers as a few flat arrays: pickling 64 arrays of token vectors
    one by one cost about 120 us an answer, one array about 40."""
    encodings = [e for _, e, _ in items]
    dim = encodings[0].vector.shape[0]
    parts = [e.parts if e.parts is not None else np.zeros((0, dim), encodings[0].vector.dtype) for e in encodings]
    return ([t for t, _, _ in items], [bool(x) for _, _, x in items], np.stack([e.vector for e in encodings]),
            np.concatenate([e.tokens for e in encodings]), np.concatenate([e.offsets for e in encodings]),
            [len(e.tokens) for e in encodings],
            # Clauses encoded on their own travel too (None where the encoder made none).
            np.concatenate(parts), [None if e.parts is None else e.part_spans for e in encodings])


def unpack(chunk: tuple) -> list[tuple[str, Encoding, bool]]:
    """The answers of :func:`pack`, each array its own copy, laid out as the encoder's were."""
    texts, truncated, vectors, tokens, offsets, counts, parts, part_spans = chunk
    out, row, prow = [], 0, 0
    for k, n in enumerate(counts):
        spans = part_spans[k]
        mine = None if spans is None else parts[prow : prow + len(spans)].copy()
        prow += 0 if spans is None else len(spans)
        encoding = Encoding(vectors[k].copy(), tokens[row : row + n].copy(), offsets[row : row + n].copy(),
                            mine, tuple(spans or ()))
        out.append((texts[k], encoding, truncated[k]))
        row += n
    return out


# -- in the grader's process ---------------------------------------------------------------------
class GradingPool:
    """Worker processes that grade encoded answers with a copy of one grader's combiner and settings."""

    def __init__(self, workers: int, combiner: dict, review_threshold: float, max_answer_chars: int):
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(_START_METHOD), initializer=_start_worker,
            initargs=(combiner, review_threshold, max_answer_chars))
        self._lock = threading.Lock()

    def submit(self, prepared: PreparedQuestion, items: list[tuple[str, Encoding, bool]]) -> Future:
        """Grade ``(text, encoding, truncated)`` answers to ``prepared``'s question in a worker."""
        chunk = pack(items)
        with self._lock:
            return self._executor.submit(grade_chunk, prepared, chunk)

    def pids(self) -> list[int]:
        """Process ids of the workers started so far (none before the first chunk, none once closed)."""
        return list(self._executor._processes or ())

    def close(self) -> None:
        """Stop the workers (those grading finish their chunk first)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


Items = list[tuple[str, Encoding, bool]]


class PooledCall:
    """One call's encoded answers on their way through a :class:`GradingPool`, a question's chunk at a time.

    At most two chunks a worker are out at once, so the encodings held stay bounded. A chunk
    whose worker fails is graded by ``grade_here`` in the calling thread, so no answer is lost;
    ``on_failure`` hears of the failure once, and the rest of the call is graded here too.
    With no pool every chunk is graded here.
    """

    def __init__(self, pool: GradingPool | None, prepared: dict[int, PreparedQuestion],
                 grade_here: Callable[[PreparedQuestion, Items], list[GradeResult]],
                 on_failure: Callable[[BaseException], None]):
        self.pool, self.prepared = pool, prepared
        self._grade_here, self._on_failure = grade_here, on_failure
        self._buffers: dict[int, list[tuple]] = {}
        self._out: deque = deque()  # (future, chunk) in the order sent
        self._done: list[tuple[tuple, GradeResult]] = []

    def add(self, key: tuple, text: str, encoding: Encoding) -> None:
        """Queue one encoded answer; ``key[0]`` is its question and ``key[2]`` whether it was cut."""
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

    def _failed(self, exc: BaseException) -> None:
        if self.pool is not None:
            self.pool = None
            self._on_failure(exc)

    def _send(self, chunk: list[tuple]) -> None:
        future = None
        if self.pool is not None:
            try:
                future = self.pool.submit(self._prepared_of(chunk), _items(chunk))
            except RuntimeError as exc:  # BrokenProcessPool is one, and so is a pool already shut down
                self._failed(exc)
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
                self._failed(exc)
        if results is None:
            results = self._grade_here(self._prepared_of(chunk), _items(chunk))
        self._done.extend((key, result) for (key, _, _), result in zip(chunk, results))

    def _prepared_of(self, chunk: list[tuple]) -> PreparedQuestion:
        return self.prepared[id(chunk[0][0][0])]  # every answer of a chunk is to one question


def _items(chunk: list[tuple]) -> Items:
    """``(text, encoding, truncated)`` of each ``(key, text, encoding)`` of a chunk."""
    return [(text, encoding, key[2]) for key, text, encoding in chunk]
