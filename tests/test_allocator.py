"""The C-heap tuning that keeps the encoder's memory flat: applied once, and can be turned off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "from grader.allocator import fix_mmap_threshold as f; print(f(), f())"


def _run(**env):
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_threshold_is_pinned_once_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _run(GRADER_MALLOC_TUNING="1") == "True True"


def test_tuning_can_be_turned_off():
    assert _run(GRADER_MALLOC_TUNING="0") == "False False"
