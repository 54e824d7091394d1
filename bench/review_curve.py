"""How much a few hand grades help the rest: suggested picks against random picks.

    .venv/bin/python bench/review_curve.py [--data ../shared/data/saf_en/train.csv] [--seeds 5]

For every question of the corpus the grader first grades all answers alone. Then, at
each budget (2%, 5%, 10%, 20% of the question's answers), an instructor "hand-grades"
the picked answers (their human scores), "Regrade the rest with my corrections" turns
them into graded examples (:func:`grader.review.regrade.with_corrections`, as the review
app does) and the answers not picked are regraded. The table gives the agreement of
those regraded answers with the human labels (accuracy) and their mean absolute error
in points, for picks by "Grade these first" (:func:`grader.review.clusters.suggest`, as
the app suggests them) and for random picks (mean and spread over ``--seeds``).

Target: on SAF-en, suggested picks reach the accuracy random picks reach at
10% with 5% or less. Suggested picks favour doubtful answers, which also leaves fewer hard
answers to score; the "all" columns, which count every answer with the hand grades in
place, are the fairer comparison. About two minutes on two cores.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench.common import SAF_EN  # noqa: E402

from grader.engine import Grader, get_embedder  # noqa: E402
from grader.evaluation.corpus import build_questions, read_corpus  # noqa: E402
from grader.evaluation.training import CachingEmbedder  # noqa: E402
from grader.review.clusters import suggest  # noqa: E402
from grader.review.regrade import with_corrections  # noqa: E402
from grader.text import normalize  # noqa: E402

BUDGETS = (0.02, 0.05, 0.10, 0.20)
DATA = SAF_EN


def picks_for(strategy: str, items: list, k: int, vectors: np.ndarray, doubt: np.ndarray, seed: int) -> list[int]:
    """Indices of the ``k`` answers of one question to hand-grade."""
    if strategy == "random":
        return random.Random(seed).sample(range(len(items)), k)
    # As the app does: distinct answers (up to case and spacing) are one item, weighted by their count.
    keys = [normalize(r.answer) for r in items]
    distinct = list(dict.fromkeys(keys))
    first = {key: keys.index(key) for key in distinct}
    weights = np.array([keys.count(key) for key in distinct], dtype=float)
    rows = [first[key] for key in distinct]
    chosen = suggest(vectors[rows], weights, doubt[rows], k)
    return [rows[i] for i, _ in chosen]


def run(data: Path, seeds: int) -> None:
    started = time.perf_counter()
    rows = [r for r in read_corpus(data) if r.label]
    by_q: dict[str, list] = defaultdict(list)
    for r in rows:
        by_q[r.question_id].append(r)
    questions = build_questions(rows)
    embedder = CachingEmbedder(get_embedder().load())
    embedder.warm([r.answer for r in rows if r.answer.strip()])
    grader = Grader(embedder=embedder)
    vectors, doubt = {}, {}
    base_correct = base_total = 0
    for qid, items in by_q.items():
        texts = [r.answer for r in items]
        vectors[qid] = embedder.encode([t if t.strip() else "(blank)" for t in texts])
        results = grader.grade_answers(questions[qid], texts)
        doubt[qid] = np.array([1.0 - r.confidence for r in results])
        base_correct += sum(res.label == r.label for res, r in zip(results, items))
        base_total += len(items)
    print(f"{len(rows)} answers to {len(by_q)} questions of {data}; the grader alone agrees with "
          f"{base_correct / base_total:.1%} of the human labels (encoded in {time.perf_counter() - started:.0f} s)\n")

    def agreement(strategy: str, budget: float, seed: int) -> tuple[float, float, int, float]:
        correct = total = picked = 0
        errors = []
        for qid, items in by_q.items():
            k = max(1, round(budget * len(items)))
            chosen = set(picks_for(strategy, items, k, vectors[qid], doubt[qid], seed))
            q = questions[qid]
            graded = [(items[i].answer, (items[i].fraction or 0.0) * q.max_points) for i in chosen
                      if items[i].fraction is not None]
            rest = [r for i, r in enumerate(items) if i not in chosen]
            results = grader.grade_answers(with_corrections(q, graded), [r.answer for r in rest])
            correct += sum(res.label == r.label for res, r in zip(results, rest))
            errors += [abs(res.points - r.fraction * q.max_points) for res, r in zip(results, rest)
                       if r.fraction is not None]
            total += len(rest)
            picked += len(chosen)
        # Over every answer, the hand-graded ones carrying their human grade: what the class's grades agree on.
        whole = (correct + picked) / (total + picked)
        return correct / total, float(np.mean(errors)) if errors else math.nan, picked, whole

    print("Accuracy and MAE (points of 1) on the answers not hand-graded; 'all' counts the hand-graded answers "
          "too, with their human grade.")
    header = (f"{'hand-graded':>11}  {'answers':>7}  {'random: accuracy':>16}  {'MAE':>5}  {'all':>5}  "
              f"{'suggested: accuracy':>19}  {'MAE':>5}  {'all':>5}")
    print(header)
    print("-" * len(header))
    table = {}
    for budget in BUDGETS:
        runs = [agreement("random", budget, seed) for seed in range(seeds)]
        accs = [a for a, _, _, _ in runs]
        spread = statistics.pstdev(accs) if len(accs) > 1 else 0.0
        mae = statistics.fmean(m for _, m, _, _ in runs)
        whole = statistics.fmean(w for _, _, _, w in runs)
        s_acc, s_mae, picked, s_whole = agreement("suggested", budget, 0)
        table[budget] = (statistics.fmean(accs), s_acc)
        print(f"{budget:>11.0%}  {picked:>7}  {statistics.fmean(accs):>9.1%} ±{spread:>4.1%}  {mae:>5.3f}  "
              f"{whole:>5.1%}  {s_acc:>19.1%}  {s_mae:>5.3f}  {s_whole:>5.1%}", flush=True)
    target = table[0.10][0]
    reached = [b for b in BUDGETS if table[b][1] >= target]
    verdict = (f"suggested picks reach random's 10% accuracy ({target:.1%}) at {reached[0]:.0%}"
               if reached else f"suggested picks never reach random's 10% accuracy ({target:.1%})")
    ok = bool(reached) and reached[0] <= 0.05
    print(f"\n{verdict}: target (<= 5%) {'met' if ok else 'NOT met'}. "
          f"{seeds} random seeds; {time.perf_counter() - started:.0f} s in all.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"labelled corpus (default: {DATA})")
    parser.add_argument("--seeds", type=int, default=5, help="random pick sets averaged per budget (default: 5)")
    args = parser.parse_args(argv)
    run(args.data, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
