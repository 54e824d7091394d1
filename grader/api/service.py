"""The state behind the routes: loaded rubrics, one Grader per rubric, the model and the batcher.

It resolves requests to (grader, question, answer) items, enforces the limits
before any work starts, and hands items to the micro-batcher, which calls
``Grader.grade_pairs``. A new inline question is first prepared in small steps
(:mod:`grader.api.inline`) that the batcher interleaves with other requests.
All grading happens in the engine.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from grader.api.batching import BatchOutcome, MicroBatcher
from grader.api.errors import clip
from grader.api.inline import PrecomputedEncoder, check_inline_limits, chunks, question_chars, question_texts
from grader.errors import (GraderError, LimitError, PayloadTooLargeError, ServiceUnavailableError,
                           UnknownRubricError)
from grader.rubric import Rubric, ShortAnswerQuestion

log = logging.getLogger("grader.api")

# Answers of a few lengths: the first encoder calls at each new shape are slow on CPU.
WARMUP_ANSWERS = ("Gradients vanish.",
                  "The same weight matrix multiplies the hidden state at every step, so gradients shrink.",
                  " ".join(["The cell state is updated additively through gates, so information persists."] * 4))
ITEM_COST = 20  # characters an item costs in a batch besides its answer: parsing, scoring, its result


@dataclass(frozen=True)
class _Plan:
    """Model-thread step: list the texts an inline question's preparation encodes."""

    question: ShortAnswerQuestion


@dataclass(frozen=True)
class _Encode:
    """Model-thread step: encode some of an inline question's texts ahead of its preparation."""

    texts: tuple[str, ...]


class GradingService:
    """Rubrics, graders and batcher of one running app.

    ``loader`` returns a loaded embedder; it runs once, in a background thread,
    after the server starts, so ``/healthz`` answers at once and ``/readyz``
    only when grading can begin.
    """

    def __init__(self, settings, rubrics: dict[str, Rubric], *, metrics=None,
                 loader: Callable[[], object] | None = None):
        self.settings = settings
        self.rubrics = dict(rubrics)
        self.metrics = metrics
        self.loader = loader or self._default_loader
        self.graders: dict[str, object] = {}
        self.inline = None
        self.embedder = None
        self.state = "loading"
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.batcher = MicroBatcher(self._run_batch, max_size=settings.batch_max_size,
                                    wait_s=settings.batch_wait_ms / 1000.0, max_queue=settings.queue_max,
                                    max_cost=settings.batch_max_chars, metrics=metrics)
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def _default_loader(self):
        from grader.encoding.registry import get_embedder

        s = self.settings
        return get_embedder(s.model, s.device, s.backend).load()

    async def start(self) -> None:
        """Start the batcher and load the model in the background."""
        await self.batcher.start()
        self._thread = threading.Thread(target=self.load, name="grader-load", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the batcher; waiting requests get 503."""
        await self.batcher.stop()

    def load(self) -> None:
        """Load the model and combiner, build one Grader per rubric and warm them up (blocking)."""
        from grader.engine import Grader
        from grader.engine.scorer import load_combiner_spec

        started = time.perf_counter()
        s = self.settings
        try:
            embedder = self.loader()
            scorer, combiner = load_combiner_spec(s.combiner)  # a scorer folder is checked once, for every rubric
            options = dict(embedder=embedder, combiner=combiner, scorer=scorer, review_threshold=s.review_threshold,
                           max_answer_chars=s.max_answer_chars)
            graders = {rid: Grader(r, **options) for rid, r in self.rubrics.items()}
            # Vectors encoded ahead by _Encode steps wait in the inline grader's encoder until prepare().
            inline = Grader(None, **{**options, "embedder": PrecomputedEncoder(embedder, s.inline_cache_bytes // 4)},
                            cache_bytes=s.inline_cache_bytes)
            for rid, grader in graders.items():  # vectors of every question now, not on the first request
                short = [q for q in self.rubrics[rid].questions if isinstance(q, ShortAnswerQuestion)]
                if short:
                    for answer in WARMUP_ANSWERS:
                        grader.grade_pairs([(q, answer) for q in short])
                    grader.grade_pairs([(short[0], f"{a} ({i})") for i, a in enumerate(WARMUP_ANSWERS * 3)])
        except GraderError as exc:
            self.state, self.error = "failed", str(exc)
            log.error("model failed to load: %s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - reported by /readyz instead of killing the server
            self.state, self.error = "failed", f"{type(exc).__name__} while loading the model"
            log.exception("model failed to load")
            return
        self.embedder, self.graders, self.inline = embedder, graders, inline
        self.load_seconds = time.perf_counter() - started
        self.state = "ready"
        if self.metrics is not None:
            self.metrics.ready.set(1)
        log.info("ready: %d rubric(s), model loaded and warmed up in %.1f s", len(graders), self.load_seconds)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def model_info(self) -> dict | None:
        """Name, device and backend of the loaded model."""
        info = getattr(self.embedder, "info", None)
        return info() if callable(info) else None

    def require_ready(self) -> None:
        """Raise 503 unless the model is loaded."""
        if self.state == "failed":
            raise ServiceUnavailableError(f"the model failed to load: {self.error}")
        if not self.ready:
            raise ServiceUnavailableError("the model is still loading; retry shortly (see GET /readyz)")

    # -- resolving requests -------------------------------------------------------------
    def rubric(self, rubric_id: str, field: str = "rubric_id") -> Rubric:
        """A loaded rubric, or 404 naming the loaded ones."""
        rubric = self.rubrics.get(rubric_id)
        if rubric is None:
            ids = ", ".join(sorted(self.rubrics)) or "none"
            raise UnknownRubricError(f"rubric '{clip(rubric_id, 60)}' is not loaded. Loaded rubrics: {ids}.",
                                     field=field)
        return rubric

    def check_answer(self, answer: str, field: str) -> None:
        """422 naming ``field`` when the answer is longer than ``max_answer_chars``."""
        limit = self.settings.max_answer_chars
        if len(answer) > limit:
            raise LimitError(f"field '{field}' is {len(answer)} characters long; the limit is {limit} "
                             "(GRADER_MAX_ANSWER_CHARS).", field=field)

    def check_batch(self, size: int, field: str = "items") -> None:
        """422 when a batch has more items than ``max_batch_size``."""
        limit = self.settings.max_batch_size
        if size > limit:
            raise LimitError(f"field '{field}' holds {size} items; the limit is {limit} (GRADER_MAX_BATCH_SIZE).",
                             field=field)

    def check_request_chars(self, chars: int, field: str | None = None) -> None:
        """413 when a request holds more than ``max_request_chars`` characters of answers and inline questions."""
        limit = self.settings.max_request_chars
        if chars > limit:
            where = f"field '{field}' holds" if field else "the request holds"
            raise PayloadTooLargeError(f"{where} {chars} characters of answers and questions; the limit is {limit} "
                                       "(GRADER_MAX_REQUEST_CHARS).", field=field)

    @staticmethod
    def request_chars(request) -> int:
        """Characters of a GradeRequest's answer and inline question."""
        return len(request.answer) + (question_chars(request.question) if request.question is not None else 0)

    def resolve(self, request, prefix: str = "") -> tuple:
        """(grader, question, answer) for a GradeRequest; errors name fields under ``prefix``.

        Every limit is checked here, before any work starts.
        """
        self.check_answer(request.answer, f"{prefix}answer")
        if request.question is not None:
            check_inline_limits(request.question, self.settings, f"{prefix}question")
            return (self.inline, request.question.to_question(f"{prefix}question"), request.answer)
        rubric = self.rubric(request.rubric_id, f"{prefix}rubric_id")
        try:
            question = rubric.question(request.question_id)
        except GraderError as exc:
            raise exc.with_field(f"{prefix}question_id") from exc
        return (self.graders.get(rubric.id), question, request.answer)

    def feedback_level(self, requested: str | None, question=None, rubric: Rubric | None = None) -> str:
        """The feedback level of a grade: the request's, else the question's or rubric's, else the setting's."""
        return (requested or getattr(question, "feedback_level", None) or getattr(rubric, "feedback_level", None)
                or self.settings.feedback_level)

    # -- grading ------------------------------------------------------------------------
    async def grade(self, items: Sequence[tuple]) -> list[BatchOutcome]:
        """Grade resolved items through the batcher; each outcome holds a result or that item's exception.

        New inline questions are prepared first, in small steps. After ``grade_timeout_s`` the
        request gets 503 and whatever of its work has not started is dropped.
        """
        self.require_ready()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.grade_timeout_s
        submitted: list[asyncio.Future] = []
        try:
            await self._prepare_inline(items, deadline, submitted)
            costs = [ITEM_COST + len(answer or "") for _, _, answer in items]
            futures = self.batcher.submit(list(items), costs)
            submitted += futures
            await self._wait(futures, deadline)
            return [f.result() for f in futures]
        finally:
            for fut in submitted:  # a timed-out (or abandoned) request leaves no work behind
                if not fut.done():
                    fut.cancel()

    async def _wait(self, futures: list[asyncio.Future], deadline: float) -> None:
        if not futures:
            return
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        _, pending = await asyncio.wait(futures, timeout=remaining)
        if pending:
            raise ServiceUnavailableError(f"grading took longer than {self.settings.grade_timeout_s:g} s "
                                          "(GRADER_GRADE_TIMEOUT_S); retry shortly")

    async def _prepare_inline(self, items: Sequence[tuple], deadline: float,
                              submitted: list[asyncio.Future]) -> None:
        """Encode the texts of new inline questions in steps of at most ``batch_max_chars`` characters."""
        inline = self.inline
        if inline is None:
            return
        new = list(dict.fromkeys(q for grader, q, _ in items if grader is inline and not inline.is_prepared(q)))
        if not new:
            return
        plans = self.batcher.submit([_Plan(q) for q in new], [ITEM_COST + question_chars(q) // 20 for q in new])
        submitted += plans
        await self._wait(plans, deadline)
        steps = []
        for fut in plans:
            texts = fut.result().value
            if isinstance(texts, BaseException):
                continue  # grading the item prepares the question in one piece, and reports the error
            steps += [_Encode(tuple(c)) for c in chunks(texts, self.settings.batch_max_chars)]
        encodes = self.batcher.submit(steps, [sum(len(t) for t in step.texts) for step in steps])
        submitted += encodes
        await self._wait(encodes, deadline)

    def _run_batch(self, items: list) -> list:
        """Runs in the model thread: preparation steps first, then one ``grade_pairs`` call per grader."""
        out: list = [None] * len(items)
        groups: dict[int, list[int]] = {}
        graded = 0
        for i, item in enumerate(items):
            if isinstance(item, _Plan):
                out[i] = question_texts(item.question, self.inline.language)
            elif isinstance(item, _Encode):
                self.inline.embedder.precompute(item.texts)
            else:
                groups.setdefault(id(item[0]), []).append(i)
        for indices in groups.values():
            grader = items[indices[0]][0]
            results = grader.grade_pairs([(items[i][1], items[i][2]) for i in indices])
            for i, result in zip(indices, results):
                out[i] = result
            graded += len(indices)
        if self.metrics is not None and graded:
            self.metrics.answers.labels("ok").inc(graded)
        return out
