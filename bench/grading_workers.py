"""Grading throughput with the encoder's cost taken away, as beside a GPU, by number of grading processes.

    .venv/bin/python bench/grading_workers.py [--answers 6000] [--workers 0,1,2] [--corpus generated]

On a GPU the encoder turns out thousands of short answers a second, so grading, about a
millisecond of Python an answer on one core, sets the pace unless it runs in several
processes (``Grader(workers=N)``, grader/engine/workers.py). This encodes the answers of
``bench.common.load_corpus`` once, then grades them through an embedder that hands those
encodings back at once, so the clock covers what grading costs the grader's process and its
workers. It prints answers/s for each number of workers (``0``: in the calling thread, the CPU
default), the CPU cores it kept busy, the CPU the grader's own process spent an answer (with
workers: handing answers out and taking results back, which caps what one process can feed
them), and whether every result equals the in-thread one.
The answers/s of ``N`` workers is what a GPU fast enough for it can reach with ``N + 1``
cores; on a 2-core machine two workers already compete with the grader's process.

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import cpu_seconds, load_corpus  # noqa: E402


class ReadyEncodings:
    """An embedder over encodings computed beforehand: encoding costs nothing, as nearly on a GPU."""

    def __init__(self, embedder, encodings: dict):
        self.name, self.sha256, self.device, self.loaded = embedder.name, embedder.sha256, "ready", True
        self.source, self.encodings = embedder, encodings

    def load(self):
        return self

    def encode(self, texts):
        return self.source.encode(texts)  # questions' reference and key phrases, once each

    def encode_tokens(self, texts):
        return [self.encodings[t] for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=("saf_en", "generated"), default="generated")
    parser.add_argument("--answers", type=int, default=6000)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated numbers of grading processes")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per setting (the best is printed)")
    args = parser.parse_args()
    from grader.engine import Grader, get_embedder

    questions, pairs = load_corpus(args.corpus, args.answers)
    embedder = get_embedder(None, "cpu", "auto", None)
    encodings = Grader(None, embedder=embedder).encode_answers(a for _, a in pairs)
    ready = ReadyEncodings(embedder, encodings)
    print(f"{len(pairs)} {args.corpus} answers, encoded beforehand ({embedder.backend}); grading only, "
          f"best of {args.rounds} rounds")
    print(f"{'workers':>7} {'answers/s':>10} {'ms/answer':>10} {'cores busy':>11} {'own CPU us/answer':>18} "
          f"{'same results':>13}")
    reference = None
    for workers in [int(w) for w in args.workers.split(",")]:
        grader = Grader(None, embedder=ready, workers=workers)
        for q in questions.values():
            grader.prepare(q)
        grader.grade_pairs(pairs[:300])  # starts the processes and warms the caches
        best = None
        for _ in range(args.rounds):
            started, cpu, own = time.perf_counter(), cpu_seconds(grader.worker_pids()), time.process_time()
            results = grader.grade_pairs(pairs)
            wall = time.perf_counter() - started
            if best is None or wall < best[0]:
                busy = (cpu_seconds(grader.worker_pids()) - cpu) / wall
                best = (wall, busy, (time.process_time() - own) / len(pairs) * 1e6)
        grader.close()
        dicts = [r.to_dict() for r in results]
        reference = dicts if reference is None else reference
        same = "yes" if dicts == reference else f"NO ({sum(a != b for a, b in zip(dicts, reference))} differ)"
        print(f"{workers:>7} {len(pairs) / best[0]:>10.1f} {best[0] / len(pairs) * 1e3:>10.3f} {best[1]:>11.2f} "
              f"{best[2]:>18.0f} {same:>13}")


if __name__ == "__main__":
    main()
