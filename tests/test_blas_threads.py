"""numpy's BLAS runs on one thread once a grader exists, unless GRADER_BLAS_THREADS says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from grader.encoding.blas_threads import blas_threads_setting
from grader.errors import ConfigError

CODE = """
import numpy  # loads the BLAS
from threadpoolctl import threadpool_info
before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
from grader.encoding.blas_threads import limit_blas_threads
print(limit_blas_threads(), limit_blas_threads(), before, [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
"""


def _run(value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_BLAS_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "OMP_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"  # two threads to start from, on any machine
    if value is not None:
        env["GRADER_BLAS_THREADS"] = value
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env)
    return out.stdout.strip().split(None, 2)


def test_blas_gets_one_thread_by_default_and_the_setting_is_applied_once():
    applied, again, threads = _run(None)
    assert (applied, again) == ("1", "1")
    assert threads == "[2] [1]"


def test_a_chosen_number_is_applied_and_zero_leaves_blas_alone():
    assert _run("2")[2] == "[2] [2]"
    assert _run("0")[:2] == ["0", "0"] and _run("0")[2] == "[2] [2]"


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_a_bad_setting_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("GRADER_BLAS_THREADS", value)
    with pytest.raises(ConfigError, match="GRADER_BLAS_THREADS.*Got"):
        blas_threads_setting()


def test_making_a_grader_applies_the_limit(monkeypatch, embedder):
    from grader.engine import grader as engine

    calls = []
    monkeypatch.setattr(engine, "limit_blas_threads", lambda: calls.append(1))
    engine.Grader(None, embedder=embedder)
    engine.Grader.for_signals(embedder)
    assert calls == [1, 1]
