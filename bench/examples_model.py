"""What a question's graded examples cost: fitting their model once, and applying it to each answer.

For every question of a corpus in the shared format, N of its answers become graded examples
(:class:`grader.scoring.exemplars.ExampleModel`) and the rest are graded by the model. Prints,
per N, the median time to fit a question's model, the median time per answer, and the model's
memory. The answers' sentence vectors are computed before the clock starts (grading shares
them with every other signal).

    .venv/bin/python bench/examples_model.py                      # ../shared/data/saf_en/train.csv
    .venv/bin/python bench/examples_model.py CORPUS --examples 10,40,100

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from grader.encoding.registry import get_embedder
from grader.evaluation.corpus import read_corpus
from grader.scoring.exemplars import ExampleModel

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "saf_en" / "train.csv"


def run(corpus: Path, counts: list[int], seed: int = 0) -> list[dict]:
    rows = [r for r in read_corpus(corpus) if r.answer.strip() and (r.fraction is not None or r.label)]
    means = {}
    for r in rows:
        if r.label and r.fraction is not None:
            means.setdefault(r.label, []).append(r.fraction)
    grade = {r_id: float(np.mean(v)) for r_id, v in means.items()}
    embedder = get_embedder()
    vectors = np.asarray(embedder.encode([r.answer for r in rows]), dtype=np.float32)
    by_q: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_q.setdefault(r.question_id, []).append(i)
    rng = np.random.default_rng(seed)
    out = []
    for n in counts:
        fits, per_answer, sizes = [], [], []
        for idx in by_q.values():
            if len(idx) <= n:
                continue
            order = rng.permutation(idx)
            ex, rest = order[:n], order[n:]
            fractions = [rows[i].fraction if rows[i].fraction is not None else grade[rows[i].label] for i in ex]
            start = time.perf_counter()
            model = ExampleModel.of([rows[i].answer for i in ex], fractions, vectors[ex])
            fits.append(time.perf_counter() - start)
            start = time.perf_counter()
            for i in rest:
                model.predict(rows[i].answer, vectors[i])
            per_answer.append((time.perf_counter() - start) / len(rest))
            sizes.append(model.nbytes())
        out.append({"examples": n, "questions": len(fits), "fit_ms": 1000 * float(np.median(fits)),
                    "per_answer_ms": 1000 * float(np.median(per_answer)), "model_kb": float(np.median(sizes)) / 1024})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--examples", default="5,20,60", help="graded examples per question (default: 5,20,60)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print("examples  questions  fit ms (median)  ms per answer (median)  model KB (median)")
    for r in run(args.corpus, [int(v) for v in args.examples.split(",")], args.seed):
        print(f"{r['examples']:>8}  {r['questions']:>9}  {r['fit_ms']:>15.1f}  {r['per_answer_ms']:>22.3f}  "
              f"{r['model_kb']:>17.0f}")


if __name__ == "__main__":
    main()
