"""Give the C heap's free memory back to the system when it piles up.

glibc serves allocations above its *mmap threshold* with their own mappings, which
go back to the system when freed; smaller ones come from the heap, which rarely
shrinks. The threshold is dynamic: each freed large block raises it, up to 32 MiB,
so after the first long batch the encoder's activation buffers (a few MiB each, a
new shape every batch) come from the heap and leave it fragmented. Grading
SAF-en's 1,476 answers grew the process to about 1 GB that way.

Pinning the threshold low keeps memory flat but makes every buffer a fresh
mapping: encoding got 28% slower. Instead, after each encoder call
:func:`release_free_heap` asks glibc how much free memory the heap holds and, past
``FREE_HEAP_LIMIT``, returns it with ``malloc_trim`` (about 20 ms, so it runs
rarely, not once per request). Asking takes a few ms itself, so it is asked at
most every ``CHECK_EVERY`` seconds. Memory stays flat at full speed; see
``bench/throughput.py`` for the figures.

Set ``GRADER_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import time

from grader.settings import make_settings

FREE_HEAP_LIMIT = 128 * 1024 * 1024  # free bytes the heap may keep before they are returned
CHECK_EVERY = 0.5  # seconds between two looks at the heap


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


_lock = threading.Lock()
_libc = None
_resolved = False
_last_check = float("-inf")


def _glibc():
    """glibc's handle with ``mallinfo2`` and ``malloc_trim``, or None (other platforms, musl, turned off)."""
    global _libc, _resolved
    with _lock:
        if not _resolved:
            _resolved = True
            if sys.platform.startswith("linux") and make_settings().malloc_tuning:
                try:
                    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                    libc.mallinfo2.restype = _MallInfo2
                    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                    _libc = libc
                except (OSError, AttributeError):  # not glibc >= 2.33
                    _libc = None
        return _libc


def free_heap_bytes() -> int | None:
    """Free bytes held by the C heap (all arenas), or None where that cannot be asked."""
    libc = _glibc()
    return None if libc is None else int(libc.mallinfo2().fordblks)


def release_free_heap(limit: int = FREE_HEAP_LIMIT, every: float = CHECK_EVERY) -> bool:
    """Return the heap's free memory to the system when it exceeds ``limit``; True when it did.

    Asking costs a walk over the heap's free chunks (a few ms), so it is asked at most once
    per ``every`` seconds; a request that comes sooner returns False at once.
    """
    global _last_check
    now = time.monotonic()
    if now - _last_check < every:
        return False
    _last_check = now
    free = free_heap_bytes()
    if free is None or free < limit:
        return False
    _libc.malloc_trim(0)
    return True
