"""Generate a long-format submissions file and grade it with grade_csv; print rows/s and peak memory.

    .venv/bin/python bench/grade_million.py                 # 1,000,000 rows (long on a CPU)
    .venv/bin/python bench/grade_million.py --rows 100000   # a quicker run

The file mixes the five questions of rubrics/rnn_lstm.yaml: multiple-choice and
true/false answers written the ways LMSs write them, and short answers drawn from
``--distinct`` different texts with case and spacing variations (so deduplication
matters, as in a real course where many students write near-identical answers).
Peak memory is the process's maximum resident set size; it is printed after the
model is loaded and after grading, so the growth due to the file can be read off.

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import RUBRIC, peak_rss_mb  # noqa: E402

PARTS = [
    ["The vanilla RNN", "A plain recurrent network", "An RNN", "The simple RNN"],
    ["multiplies by the same weight matrix at every step", "applies one recurrent matrix again and again",
     "squashes its state through tanh each step", "has too few parameters", "forgets because its state is small"],
    ["so gradients vanish or explode;", "and the gradient decays exponentially;", "which breaks backpropagation;",
     "so it overfits;"],
    ["the LSTM keeps a cell state updated additively through gates.", "LSTMs add to a memory cell under gate control.",
     "the LSTM uses attention over earlier steps.", "the forget gate near 1 keeps the gradient flowing.",
     "LSTMs have more weight matrices."],
]
CHOICES = {"q1": ["B", "b)", "A", "C", "D", "B) In vanilla RNNs"], "q2": ["B", "A", "c", "D"],
           "q3": ["True", "T", "false", "true"], "q4": ["False", "F", "True", "no"]}


def short_answers(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct short answers built from the parts above plus a numbered detail."""
    out = []
    for i in range(n):
        words = [rng.choice(p) for p in PARTS]
        out.append(" ".join(words) + (f" (see lecture {i})" if i >= 400 else ""))
    return list(dict.fromkeys(out))


def generate(path: Path, rows: int, distinct: int, seed: int = 0) -> None:
    """Write ``rows`` long-format rows to ``path``."""
    rng = random.Random(seed)
    pool = short_answers(distinct, rng)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["student_id", "question_id", "answer", "submitted_at"])
        for i in range(rows):
            qid = f"q{i % 5 + 1}"
            if qid == "q5":
                answer = rng.choice(pool)
                if rng.random() < 0.2:
                    answer = answer.upper() if rng.random() < 0.5 else "  " + answer.replace(" ", "  ")
                if rng.random() < 0.01:
                    answer = ""
            else:
                answer = rng.choice(CHOICES[qid])
            writer.writerow([f"s{i // 5:07d}", qid, answer, f"2025-03-14T09:{i % 60:02d}:00Z"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate (default: 1,000,000)")
    parser.add_argument("--distinct", type=int, default=2000, help="distinct short answers (default: 2000)")
    parser.add_argument("--chunk-size", type=int, default=2000, help="rows per chunk (default: 2000)")
    parser.add_argument("--workdir", default=None, help="folder for the generated and graded files (default: temp)")
    parser.add_argument("--device", default=None, help="encoder device (default: CUDA when present)")
    args = parser.parse_args()

    from grader import Grader, load_rubric
    from grader.files.batch import grade_csv

    work = Path(args.workdir or tempfile.mkdtemp(prefix="grade_million_"))
    work.mkdir(parents=True, exist_ok=True)
    src, out = work / "submissions.csv", work / "graded.csv"
    t0 = time.perf_counter()
    generate(src, args.rows, args.distinct)
    print(f"generated {args.rows:,} rows ({src.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f} s")

    rubric = load_rubric(RUBRIC)
    grader = Grader(rubric, device=args.device)
    grader.grade("q5", "warm-up answer about the LSTM cell state")
    base = peak_rss_mb()
    print(f"model loaded; peak RSS so far {base:.0f} MiB")
    t0 = time.perf_counter()
    result = grade_csv(src, rubric, out, grader=grader, chunk_size=args.chunk_size, log=lambda m: None)
    elapsed = time.perf_counter() - t0
    peak = peak_rss_mb()
    print(f"graded {result.rows:,} rows ({result.answers:,} answers, {result.graded_now:,} distinct graded by the "
          f"engine) in {elapsed:.1f} s: {result.rows / elapsed:,.0f} rows/s")
    print(f"peak RSS {peak:.0f} MiB (+{peak - base:.0f} MiB over the loaded model); "
          f"output {out.stat().st_size / 2**20:.1f} MiB; {result.error_rows} rows with errors")
    print(result.summary.format_table())


if __name__ == "__main__":
    main()
