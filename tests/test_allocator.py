"""Returning the C heap's free memory: asked only past a limit, and can be turned off."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = """
from grader.encoding.allocator import free_heap_bytes, release_free_heap
blocks = [bytearray(100_000) for _ in range(1000)]  # ~100 MB in blocks under the mmap threshold
del blocks[::2]  # every other one freed: holes the heap cannot shrink past
free = free_heap_bytes()
print(free is not None and free > 40_000_000, release_free_heap(limit=10**12, every=0), release_free_heap(limit=1, every=0))
print(free_heap_bytes() is not None and free_heap_bytes() < free)
print(release_free_heap(limit=1, every=3600))  # asked again too soon: skipped
"""


def _run(**env):
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_free_heap_is_returned_past_the_limit_only():
    assert _run(GRADER_MALLOC_TUNING="1") == ["True", "False", "True", "True", "False"]


def test_tuning_can_be_turned_off():
    assert _run(GRADER_MALLOC_TUNING="0") == ["False", "False", "False", "False", "False"]
