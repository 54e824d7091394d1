"""Keep the C heap from growing while the encoder runs: glibc's mmap threshold, fixed.

glibc serves allocations above its *mmap threshold* with their own mappings, which
go back to the system when freed; smaller ones come from the heap, which rarely
shrinks. The threshold is dynamic by default: each freed large block raises it, up
to 32 MiB, so after the first long batch the encoder's activation buffers (a few
MiB each, a new shape every batch) come from the heap and fragment it. Grading
SAF-en's 1,476 answers grew the process to about 1 GB that way. Fixing the
threshold at 1 MiB keeps memory flat (about 530 MB for the same run); see
``bench/throughput.py`` for the figures.

Set ``GRADER_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 1024 * 1024  # blocks from 1 MiB up get their own mapping and go back when freed
_done = False


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold once per process; False where that is not glibc or it was turned off."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("GRADER_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = mallopt(M_MMAP_THRESHOLD, threshold) == 1
    if not _done:
        log.debug("mallopt(M_MMAP_THRESHOLD) was refused; the C heap keeps its dynamic threshold")
    return _done
