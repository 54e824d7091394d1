"""Rows/s of `grader grade --engine ray` with 1 and 2 local workers, and its cost per row beside `grader grade`.

    .venv/bin/python bench/ray_scaling.py                   # 5,000 answers, all distinct
    .venv/bin/python bench/ray_scaling.py --rows 20000 --distinct 2000

It writes a long file of answers to rubrics/rnn_lstm.yaml's q5 (``--distinct`` different ones,
default all: deduplication cannot help, so a row costs what an answer costs) and grades it:

* with ``grade_csv``, the local engine, in this process with the model already loaded, on every core;
* with ``grade_dataset`` on a local Ray instance (started and stopped by each run, bound to the
  loopback address) with 1 worker on one core, then 2 workers on a core each; each size twice,
  on ``--small`` rows and on ``--rows`` rows, so the fixed cost (starting Ray, loading the model in
  each worker) and the cost a row are told apart: a row costs (T(rows) - T(small)) / (rows - small).

The overhead a row is that of 2 workers (the whole machine, as ``grader grade`` has) less that of
``grader grade``, timed before and after the Ray runs (their mean; both are printed). Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import RUBRIC, make_answers  # noqa: E402


def write_answers(path: Path, rows: int, distinct: int) -> Path:
    """A long file of ``rows`` answers to q5 drawn from ``distinct`` different texts, in a fixed order."""
    texts = make_answers(distinct)
    rng = random.Random(1)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["student_id", "question_id", "answer"])
        for i in range(rows):
            writer.writerow([f"s{i:07d}", "q5", texts[i] if i < distinct else rng.choice(texts)])
    return path


def local_seconds(src: Path, out: Path) -> float:
    """Seconds ``grade_csv`` takes once the model is loaded (``grader grade``'s own work)."""
    from grader.engine import Grader
    from grader.files.batch import grade_csv
    from grader.rubric import load_rubric

    rubric = load_rubric(RUBRIC)
    grader = Grader(rubric)
    grader.embedder.load()
    grader.grade("q5", "warm up the encoder")
    started = time.perf_counter()
    grade_csv(src, rubric, out, grader=grader, chunk_size=2000, progress=False, log=lambda msg: None)
    return time.perf_counter() - started


def ray_seconds(src: Path, out: Path, workers: int, shard_rows: int) -> float:
    """Wall seconds of ``grade_dataset`` with ``workers`` one-core workers, Ray's start and stop included."""
    from grader.distributed import grade_dataset

    started = time.perf_counter()
    result = grade_dataset(src, RUBRIC, out, actors=workers, cpus_per_actor=1, shard_rows=shard_rows,
                           progress=False, log=lambda msg: None)
    seconds = time.perf_counter() - started
    with open(src, encoding="utf-8") as fh:
        assert result.rows == sum(1 for _ in fh) - 1 and result.resumed_rows == 0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows of the large run (default: 5000)")
    parser.add_argument("--small", type=int, default=1000, help="rows of the small run (default: 1000)")
    parser.add_argument("--distinct", type=int, default=None, help="different answers (default: --rows)")
    parser.add_argument("--shard-rows", type=int, default=500, help="rows a shard (default: 500)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.rows} rows ({args.distinct or args.rows} distinct answers to q5), {cores} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = write_answers(folder / "big.csv", args.rows, args.distinct or args.rows)
        small = write_answers(folder / "small.csv", args.small, min(args.small, args.distinct or args.small))
        local_before = local_seconds(big, folder / "local.csv")
        per_row = {}
        for workers in (1, 2):
            t_small = ray_seconds(small, folder / f"small-{workers}.parquet", workers, args.shard_rows)
            t_big = ray_seconds(big, folder / f"big-{workers}.parquet", workers, args.shard_rows)
            per_row[workers] = (t_big - t_small) / (args.rows - args.small)
            label = f"{workers} worker{'s' if workers > 1 else ' '} on {workers} core{'s' if workers > 1 else ' '}"
            print(f"--engine ray, {label}:  {args.rows / t_big:7.1f} rows/s with start-up, "
                  f"{1 / per_row[workers]:7.1f} rows/s after it  "
                  f"({1000 * per_row[workers]:.2f} ms a row; fixed {t_big - args.rows * per_row[workers]:.1f} s)")
        # Timed before and after the Ray runs: on a shared machine the two show how much its speed drifted.
        local_after = local_seconds(big, folder / "local.csv")
        local = (local_before + local_after) / 2
        print(f"grader grade (local engine, all cores):  {args.rows / local:7.1f} rows/s  "
              f"({1000 * local / args.rows:.2f} ms a row; {args.rows / local_before:.1f} rows/s before the Ray runs, "
              f"{args.rows / local_after:.1f} after)")
        print(f"scaling 1 -> 2 workers: x{per_row[1] / per_row[2]:.2f}")
        print(f"overhead a row, 2 workers against grader grade on the same {cores} cores: "
              f"{1000 * (per_row[2] - local / args.rows):+.2f} ms")
        print(f"one core grades a row in {1000 * per_row[1]:.2f} ms on Ray ({1000 * local * cores / args.rows:.2f} "
              "core-ms with grader grade)")


if __name__ == "__main__":
    main()
