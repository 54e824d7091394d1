"""Keep numpy's BLAS to one thread: the grader's matrix products are small and its cores belong to the encoder.

Grading an answer runs dozens of small products (span masks by token vectors, spans by
reference sentences). OpenBLAS splits each over every core and its worker threads then
spin for a while, waiting for more work: a graded short answer costs twice its own CPU
time (``bench/grading_overhead.py``, process against thread CPU), taken from whatever else
runs. In the HTTP service that is the encoder and the event loop: ``bench/load.py`` gave
a single-client p50 of 39.7 ms with two BLAS threads against 19.9-21.6 ms with one, and an
8-client p99 of 318 ms against 188-197 ms. In batch grading, where encoding and grading
take turns, one thread gains only a few percent. One thread grades as fast on its own.

:func:`limit_blas_threads` sets the limit once per process, when a grader is made. Set
``GRADER_BLAS_THREADS`` to another number to choose it, or to ``0`` to leave numpy's
BLAS as it is (for a program that also runs large linear algebra of its own).
"""

from __future__ import annotations

import logging
import threading

from grader.settings import make_settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_applied: int | None = None


def blas_threads_setting() -> int:
    """The ``blas_threads`` setting (``GRADER_BLAS_THREADS``; 0: leave BLAS alone); a bad value raises ConfigError."""
    return make_settings().blas_threads


def limit_blas_threads() -> int:
    """Apply :func:`blas_threads_setting` to numpy's BLAS once per process; returns the limit (0: none set)."""
    global _applied
    with _lock:
        if _applied is not None:
            return _applied
        threads = blas_threads_setting()
        if threads:
            try:
                from threadpoolctl import ThreadpoolController

                ThreadpoolController().limit(limits=threads, user_api="blas")
            except Exception as exc:  # no threadpoolctl, or a BLAS it cannot drive: grading works, only slower
                log.warning("cannot limit numpy's BLAS threads (%s); grading may be slower", exc)
        _applied = threads
        return threads
