"""What the bench scripts share: where this tree and the shared corpora are, the answers they
grade, and the clocks and memory figures they read.

A script run as a file puts this tree first on ``sys.path`` and imports ``bench.common``;
no script imports another, and none uses a private name of ``grader``.
"""

from __future__ import annotations

import os
import random
import resource
import time
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"  # the SAF corpora, one folder each: saf_en/train.csv, saf_de/train.csv
SAF_EN = DATA / "saf_en" / "train.csv"
RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"  # q5 is its short-answer question
FRAGMENTS = [
    "The vanilla RNN multiplies the hidden state by the same weight matrix at every step.",
    "Gradients shrink or explode exponentially over long sequences.",
    "Backpropagation through time repeats the same multiplication many times.",
    "The LSTM adds a separate cell state.",
    "The cell state is updated additively instead of multiplicatively.",
    "Gates decide how much old information to keep and how much new information to write.",
    "When the forget gate is close to one the gradient flows back unchanged.",
    "LSTMs have more parameters, so they remember more.",
    "The LSTM uses attention to look at earlier time steps.",
    "Information can persist across hundreds of steps.",
    "RNNs forget things because their memory is too small.",
    "The tanh nonlinearity squashes the signal at every step.",
]


def load_corpus(name: str, n: int):
    """(questions, [(question, answer)]) for 'saf_en' (real answers), 'generated' (n answers of 5-30 words) or
    'q5' (n answers of :func:`make_answers` to the example rubric's question 5, with its key phrases and
    misconceptions: the concept matcher's work)."""
    from grader.evaluation.corpus import build_questions, read_corpus

    if name == "q5":
        from grader.rubric import load_rubric

        question = load_rubric(RUBRIC).question("q5")
        return {"q5": question}, [(question, a) for a in make_answers(n or 1000)]

    rows = read_corpus(SAF_EN)
    questions = build_questions(rows)
    if name == "saf_en":
        pairs = [(questions[r.question_id], r.answer) for r in rows]
        return questions, pairs[:n] if n else pairs
    rng = random.Random(0)
    vocabulary = sorted({w for r in rows for w in r.answer.split() if w.isalpha()})
    qs = list(questions.values())
    pairs = []
    for i in range(n):
        words = rng.choices(vocabulary, k=rng.randint(5, 30))
        pairs.append((qs[i % len(qs)], " ".join(words) + f" {i}."))  # unique: dedup must not help
    return questions, pairs


def make_answers(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct answers to :data:`RUBRIC`'s q5 of 1-5 sentences built from typical student statements."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        k = rng.randint(1, 5)
        text = " ".join(rng.sample(FRAGMENTS, k))
        if rng.random() < 0.5:
            text = text.lower()
        text += f" ({len(out)})"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def in_turn(names: Sequence[str], round_number: int) -> list[str]:
    """``names`` in order on even rounds and reversed on odd ones, so drift of the machine hits all alike."""
    return list(names) if round_number % 2 == 0 else list(names)[::-1]


def cpu_seconds(pids: Iterable[int] = ()) -> float:
    """CPU seconds of this process and of the processes ``pids`` so far (theirs from /proc, Linux)."""
    total = time.process_time()
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
