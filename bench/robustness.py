"""How often gaming answers are accepted, and what the defences cost honest answers.

On a corpus in the shared format, with questions held out (GroupKFold by
``question_id``): each fold trains a combiner on the other questions, then grades
the held-out questions' genuine answers and the attacks built from them
(:mod:`grader.evaluation.attacks`), once with the detectors and once with ``DETECTORS``
emptied. It prints, per attack type, the acceptance rate (share of attacks that
earn >= 50% of the points or the label ``correct``) with and without defences and
how often a detector flags it; then the false-flag rate and the accuracy on
genuine answers with and without defences.

Some attacks dress up an incorrect human answer (inserted adjectives, an
injected instruction, markup). The grader already accepts some incorrect
answers as they are (its base error, printed below the table), so for those
attacks the table also gives the share accepted *beyond their origin*: accepted
while the very answer they were built from, graded as it is, is not. That is
what the attack itself achieves.

    .venv/bin/python bench/robustness.py                      # ../shared/data/saf_en/train.csv
    .venv/bin/python bench/robustness.py CORPUS --folds 5 --per-question 3 --json out.json

Targets: every attack type accepted <= 5%, genuine answers flagged <= 3%, accuracy
drop <= 1 point.

Record the figures on docs/robustness.md with the date and this command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import SAF_EN  # noqa: E402
from grader.scoring import detectors  # noqa: E402
from grader.evaluation.attacks import ATTACKS, generate, sources_from_corpus  # noqa: E402
from grader.evaluation.corpus import build_questions, read_corpus  # noqa: E402
from grader.engine import Grader, get_embedder  # noqa: E402
from grader.evaluation.training import CachingEmbedder, Dataset, build_dataset, fit_combiner, label_fractions_of  # noqa: E402

DEFAULT_CORPUS = SAF_EN
TOP_LABEL = "correct"
# Flags that are not detectors of gaming: the engine's own notes.
ENGINE_FLAGS = {"empty", "truncated", "misconception", "missing_required"}


def accepted(result) -> bool:
    """An attack succeeds when it earns at least half the points or the label ``correct``."""
    return result.fraction >= 0.5 - 1e-9 or result.label == TOP_LABEL


def detector_flags(result) -> list[str]:
    """Codes of the gaming detectors that fired on ``result``."""
    return [f.code for f in result.flags if f.code not in ENGINE_FLAGS]


def _grade(grader: Grader, pairs, defended: bool):
    saved = list(detectors.DETECTORS)
    if not defended:
        detectors.DETECTORS.clear()
    try:
        return grader.grade_pairs(pairs)
    finally:
        detectors.DETECTORS[:] = saved


def run(corpus: Path, folds: int = 5, per_question: int = 3, seed: int = 0, example_counts=(0,)) -> dict:
    """Grade genuine answers and attacks of held-out questions; the figures :func:`report` prints."""
    rows = read_corpus(corpus)
    questions = build_questions(rows)
    embedder = CachingEmbedder(get_embedder())
    sources = sources_from_corpus(rows)
    qids = np.array([r.question_id for r in rows], dtype=object)
    n_folds = min(folds, len(set(qids)))
    attack_stats = defaultdict(Counter)
    genuine = Counter()
    flags_on_genuine = Counter()
    started = time.perf_counter()
    # An answer's signals depend only on its own question (and its examples): compute them once for all rows.
    signals = Grader.for_signals(embedder, label_fractions=label_fractions_of(rows))
    everything = build_dataset(signals, rows, "label", questions=questions, example_counts=tuple(example_counts),
                               seed=seed)
    for fold, (train_idx, test_idx) in enumerate(GroupKFold(n_splits=n_folds).split(rows, groups=qids)):
        test = [rows[i] for i in test_idx if rows[i].answer.strip() and rows[i].label]
        held_out = {r.question_id for r in test}
        keep = np.array([g not in held_out for g in everything.groups])
        data = Dataset(everything.X[keep], everything.y[keep], everything.fractions[keep], everything.groups[keep])
        grader = Grader(None, embedder=embedder, combiner=fit_combiner(data))
        attacks = generate([s for s in sources if s.question_id in held_out], per_question, seed + fold)
        genuine_pairs = [(questions[r.question_id], r.answer) for r in test]
        attack_pairs = [(questions[a.question_id], a.answer) for a in attacks]
        # The incorrect human answers that attacks dress up, graded as they are: the attack's baseline.
        origin_pairs = [(questions[a.question_id], a.origin or "") for a in attacks]
        embedder.warm([grader.clip(t)[0] for _, t in genuine_pairs + attack_pairs + origin_pairs if t])
        for defended in (True, False):
            tag = "with" if defended else "without"
            results = _grade(grader, genuine_pairs + attack_pairs + origin_pairs, defended)
            origins = results[len(test) + len(attacks):]
            for r, res in zip(test, results[: len(test)]):
                genuine[f"correct_{tag}"] += res.label == r.label
                if defended:
                    genuine["n"] += 1
                    if r.label == "incorrect":  # the base rate that adjective insertion starts from
                        genuine["incorrect"] += 1
                        genuine["incorrect_accepted"] += accepted(res)
                    codes = detector_flags(res)
                    genuine["flagged"] += bool(codes)
                    flags_on_genuine.update(codes)
            for a, res, base in zip(attacks, results[len(test):], origins):
                stats = attack_stats[a.kind]
                stats[f"accepted_{tag}"] += accepted(res)
                # Beyond its origin: accepted although the incorrect answer it dresses up is not.
                stats[f"gained_{tag}"] += accepted(res) and not (a.origin and accepted(base))
                if a.origin:
                    stats[f"origin_accepted_{tag}"] += accepted(base)
                    stats[f"with_origin_{tag}"] += 1
                if defended:
                    stats["n"] += 1
                    stats["flagged"] += bool(detector_flags(res))
                    stats["review"] += res.needs_review
        print(f"fold {fold + 1}/{n_folds}: {len(held_out)} questions, {len(test)} answers, {len(attacks)} attacks, "
              f"{time.perf_counter() - started:.0f}s", file=sys.stderr)
    n = max(1, genuine["n"])
    return {
        "corpus": str(corpus), "folds": n_folds, "per_question": per_question, "seed": seed,
        "attacks": {k: {"n": s["n"], "accepted_with": s["accepted_with"] / max(1, s["n"]),
                        "accepted_without": s["accepted_without"] / max(1, s["n"]),
                        "gained_with": s["gained_with"] / max(1, s["n"]),
                        "gained_without": s["gained_without"] / max(1, s["n"]),
                        "with_origin": s["with_origin_with"],
                        "origin_accepted": s["origin_accepted_with"] / max(1, s["with_origin_with"]),
                        "flagged": s["flagged"] / max(1, s["n"]), "review": s["review"] / max(1, s["n"])}
                    for k, s in ((k, attack_stats[k]) for k in ATTACKS) if s["n"]},
        "genuine": {"n": genuine["n"], "flagged": genuine["flagged"] / n,
                    "accuracy_with": genuine["correct_with"] / n, "accuracy_without": genuine["correct_without"] / n,
                    "flags": dict(flags_on_genuine),
                    "incorrect_accepted": genuine["incorrect_accepted"] / max(1, genuine["incorrect"])},
        "seconds": round(time.perf_counter() - started, 1),
    }


def report(figures: dict) -> str:
    """The per-attack table and the genuine-answer figures, as Markdown."""
    lines = ["| attack | n | accepted (defended) | accepted (no defences) | accepted beyond origin (defended) "
             "| origin accepted | flagged | sent to review |",
             "|---|---|---|---|---|---|---|---|"]
    for kind, s in figures["attacks"].items():
        origin = f"{s['origin_accepted']:.1%} of {s['with_origin']}" if s["with_origin"] else "-"
        lines.append(f"| {kind} | {s['n']} | {s['accepted_with']:.1%} | {s['accepted_without']:.1%} | "
                     f"{s['gained_with']:.1%} | {origin} | {s['flagged']:.1%} | {s['review']:.1%} |")
    g = figures["genuine"]
    worst = max(s["accepted_with"] for s in figures["attacks"].values())
    worst_gain = max(s["gained_with"] for s in figures["attacks"].values())
    lines += ["", f"genuine answers: {g['n']}; flagged by a detector: {g['flagged']:.2%} {g['flags']}",
              f"accuracy on genuine answers: {g['accuracy_with']:.2%} with defences, "
              f"{g['accuracy_without']:.2%} without (drop {100 * (g['accuracy_without'] - g['accuracy_with']):.2f} points)",
              f"genuine answers labelled incorrect that are accepted: {g.get('incorrect_accepted', 0):.1%}",
              f"targets: worst attack accepted {worst:.1%} ({worst_gain:.1%} beyond its origin) (<= 5%), flagged {g['flagged']:.2%} (<= 3%), "
              f"drop {100 * (g['accuracy_without'] - g['accuracy_with']):.2f} (<= 1 point)",
              f"{figures['folds']} folds by question, {figures['per_question']} attacks per type and question, "
              f"seed {figures['seed']}, {figures['seconds']}s"]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: print the table; ``--json`` also writes the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--per-question", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--example-counts", type=int, nargs="+", default=[0],
                        help="graded examples per question when training each fold's combiner")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = run(args.corpus, args.folds, args.per_question, args.seed, tuple(args.example_counts))
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
