"""Grading throughput by the number of answers a call grades: the shape of HTTP requests and quiz attempts.

    .venv/bin/python bench/call_size.py [--calls 1,4,8,17,32] [--rounds 6] [--backend int8]

Grades 160 of the q5 answers bench/load.py sends (``bench.common.make_answers``) with
``Grader.grade_many`` in calls of each size, in alternating rounds against the same grader
with an explicit batch size of 16 (which turns off cutting short lists into batches for
every core), and prints the median answers/s of each and the median of the round-by-round
ratios. The HTTP service's micro-batcher makes calls of this size (`bench/load.py` prints
their mean).

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import RUBRIC, in_turn, make_answers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="1,4,8,17,32", help="comma-separated answers per call")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--answers", type=int, default=160)
    parser.add_argument("--backend", default="int8")
    args = parser.parse_args()
    from grader import Grader, load_rubric
    from grader.engine import get_embedder

    rubric = load_rubric(RUBRIC)
    answers = make_answers(args.answers)
    graders = {"cut per core": Grader(rubric, embedder=get_embedder(None, "cpu", args.backend)),
               "batch 16": Grader(rubric, embedder=get_embedder(None, "cpu", args.backend, 16))}
    for grader in graders.values():
        grader.grade_many([("q5", a) for a in make_answers(40, seed=99)])  # load and warm up
    print(f"{args.answers} q5 answers, backend {args.backend}, median of {args.rounds} alternating rounds")
    print(f"{'answers a call':>14} {'cut per core /s':>16} {'batch 16 /s':>12} {'ratio':>6} {'ratio range':>12}")
    for call in [int(c) for c in args.calls.split(",")]:
        rates: dict[str, list[float]] = {k: [] for k in graders}
        for r in range(args.rounds):
            for name in in_turn(list(graders), r):
                started = time.perf_counter()
                for i in range(0, len(answers), call):
                    graders[name].grade_many([("q5", a) for a in answers[i : i + call]])
                rates[name].append(len(answers) / (time.perf_counter() - started))
        ratios = [a / b for a, b in zip(*rates.values())]
        new, old = (statistics.median(v) for v in rates.values())
        print(f"{call:>14} {new:>16.1f} {old:>12.1f} {statistics.median(ratios):>6.2f} "
              f"{min(ratios):>5.2f}-{max(ratios):<5.2f}")


if __name__ == "__main__":
    main()
