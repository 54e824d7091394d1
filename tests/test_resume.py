"""Killing `grader grade` with SIGKILL part-way and resuming gives the bytes of an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"
ROWS, CHUNK = 96, 16
STARTS = ["The RNN multiplies by the same weight matrix", "LSTMs add a cell state that is updated additively",
          "Gradients vanish because of repeated multiplication", "The forget gate near one keeps the gradient",
          "LSTMs use attention over earlier steps", "RNNs have too few parameters"]


def _command(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grader", "grade", str(src), "--rubric", str(RUBRIC), "-o", str(out),
            "--chunk-size", str(CHUNK), "--quiet", *extra]


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


@pytest.fixture(scope="module")
def submissions(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("resume")
    path = folder / "in.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["student_id", "question_id", "answer"])
        for i in range(ROWS):
            qid = "q5" if i % 4 else ("q3" if i % 8 else "q1")
            answer = f"{STARTS[i % len(STARTS)]}, step {i}, so the cell state keeps it." if qid == "q5" else "B"
            if i % 10 == 3:
                answer = STARTS[0]  # repeats across chunks exercise the dedup cache on resume
            writer.writerow([f"s{i}", qid, answer])
    return path


def test_sigkill_then_resume_is_byte_identical_to_an_uninterrupted_run(submissions, tmp_path):
    whole = tmp_path / "whole.csv"
    done = subprocess.run(_command(submissions, whole), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed.csv"
    journal = out.with_name(out.name + ".journal")
    proc = subprocess.Popen(_command(submissions, out), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        # Wait until a chunk is safely written (journal: fingerprint, header, then one line per chunk).
        while time.monotonic() < deadline:
            if journal.exists() and journal.read_bytes().count(b"\n") >= 3:
                break
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "the output must appear only when complete"
    lines = journal.read_bytes().count(b"\n")
    assert 3 <= lines < 2 + ROWS // CHUNK

    resumed = subprocess.run(_command(submissions, out, "--resume"), env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == whole.read_bytes()
    assert not journal.exists() and not out.with_name(out.name + ".part").exists()
