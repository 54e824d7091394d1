"""Combiner variants on new questions: the grader's signals computed once, then refitted several ways.

    .venv/bin/python eval/combiner_variants.py ../shared/data/saf_en/train.csv [--folds 5] [--seed 0] [--biencoder]

Each variant is fitted on the signals of the training questions of each fold of ``--cv unseen-questions``
(the same folds as ``grader eval``) and labels the held-out questions' answers; the script prints its
accuracy. The signals are those of a question graded from its model answer alone (no graded examples), as
on a new question. Variants:

- ``shipped form``: standardise, multinomial logistic regression, C 0.1 (the combiner's form; without its
  calibration and grade regression, so within a point of ``grader eval``);
- ``C ...``: the same with other regularisation;
- ``class-relative``: each signal also standardised within its question's answers (needs the whole class's
  answers at grading time, and makes one student's grade depend on the others');
- ``class ranks``: each signal's rank within its question's answers instead;
- ``question means``: each signal's mean over its question's answers beside it;
- ``boosted trees``: scikit-learn's HistGradientBoostingClassifier on the signals;
- ``regressed fraction``: ridge regression of the grade fraction, cut into labels at fixed thresholds;
- ``question-reference cosine``: the cosine between the question's prompt and its model answer beside the
  signals, a constant of each question that the rubric alone gives (a model answer close to its prompt makes every
  on-topic answer close to it too, so it might tell how strict to be); each row's own prompt and model answer, as
  one question id of SAF-en holds two versions of its question;
- ``ref_sim less it``: the answer's similarity to the model answer less that cosine, in its place;
- ``alternatives ...`` (with ``--alternatives``): the signals recomputed with the model answers' offered
  alternatives (lexicon.OFFERS_ALTERNATIVES) not read, read with 1 or 3 reference sentences credited instead of
  2, and with an example inside one point ("e.g.", "such as", "for example", "z.B.") also read as one;
- ``fine-tuned bi-encoder`` (with ``--biencoder``, about 5 minutes a fold on 2 cores): MiniLM fine-tuned on each
  fold's training questions as a bi-encoder, the cosine between answer and model answer regressed on the grade
  fraction (1 epoch, embeddings frozen), its cosine beside the signals.

The figures are in docs/evaluation.md, "What holds unseen questions back".
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from grader.encoding.registry import get_embedder  # noqa: E402
from grader.evaluation.corpus import LabeledAnswer, read_corpus  # noqa: E402
from grader.evaluation.protocols import splits  # noqa: E402
from grader.evaluation.training import DEFAULT_IGNORED, CachingEmbedder, training_data  # noqa: E402
from grader.scoring.features import FEATURES  # noqa: E402
from grader.text import normalize  # noqa: E402

# the signals a question without graded examples has (FEATURES up to token_f1), less those the combiner ignores
OWN = [i for i, n in enumerate(FEATURES[: FEATURES.index("token_f1") + 1]) if n not in DEFAULT_IGNORED]


def per_question(X: np.ndarray, groups: np.ndarray, how: str) -> np.ndarray:
    """Each column of ``X`` standardised ('z'), ranked ('rank') or averaged ('mean') within each question."""
    out = np.zeros_like(X)
    for q in np.unique(groups):
        m = np.flatnonzero(groups == q)
        block = X[m]
        if how == "z":
            out[m] = (block - block.mean(0)) / (block.std(0) + 1e-6)
        elif how == "rank":
            out[m] = (np.argsort(np.argsort(block, 0), 0) + 0.5) / len(m)
        else:
            out[m] = block.mean(0)
    return out


def held_out(X, y, groups, folds, make) -> float:
    """Accuracy on every fold's held-out questions of the classifier ``make()`` fitted on the others."""
    pred = np.empty(len(y), dtype=object)
    for test_questions in folds:
        test = np.isin(groups, list(test_questions))
        scale = StandardScaler().fit(X[~test])
        pred[test] = make().fit(scale.transform(X[~test]), y[~test]).predict(scale.transform(X[test]))
    return float((pred == y).mean())


def regressed(X, y, fractions, groups, folds, cuts=(0.25, 0.75)) -> float:
    """Accuracy of a ridge regression of the grade fraction cut into three labels at ``cuts``."""
    pred = np.empty(len(y), dtype=object)
    known = ~np.isnan(fractions)
    for test_questions in folds:
        test = np.isin(groups, list(test_questions))
        fit = ~test & known
        scale = StandardScaler().fit(X[fit])
        p = Ridge(alpha=10.0).fit(scale.transform(X[fit]), fractions[fit]).predict(scale.transform(X[test]))
        pred[test] = np.where(p < cuts[0], "incorrect", np.where(p < cuts[1], "partially_correct", "correct"))
    return float((pred == y).mean())


def question_reference_cosine(rows: list[LabeledAnswer], embedder) -> np.ndarray:
    """Each row's cosine between its own prompt and model answer (one question id may hold two versions), a column."""
    pairs = sorted({(r.question, r.reference_answer) for r in rows})
    q = np.asarray(embedder.encode([p for p, _ in pairs]), dtype=float)
    ref = np.asarray(embedder.encode([a for _, a in pairs]), dtype=float)
    cos = (q * ref).sum(1) / (np.linalg.norm(q, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12)
    by_pair = dict(zip(pairs, cos))
    return np.array([[by_pair[(r.question, r.reference_answer)]] for r in rows])


def biencoder_cosine(rows: list[LabeledAnswer], fractions: np.ndarray, folds, seed: int, epochs: int = 1,
                     ) -> np.ndarray:
    """Each held-out row's cosine to its model answer under MiniLM fine-tuned on the fold's other questions, the
    cosine regressed on the rows' human grade ``fractions`` (rows without one are not trained on)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from grader.encoding.weights import resolve_model

    folder = str(resolve_model(None)[0])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    answers, refs = [r.answer for r in rows], [r.reference_answer for r in rows]
    y = torch.tensor(np.nan_to_num(fractions), dtype=torch.float32)
    groups = np.array([r.question_id for r in rows])

    def pooled(model, texts, max_length):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    out = np.zeros((len(rows), 1))
    for k, test_questions in enumerate(folds):
        torch.manual_seed(seed + k)
        model = AutoModel.from_pretrained(folder)
        for p in model.embeddings.parameters():
            p.requires_grad_(False)
        optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5, weight_decay=0.01)
        test = np.flatnonzero(np.isin(groups, list(test_questions)))
        train = np.flatnonzero(~np.isin(groups, list(test_questions)) & np.isfinite(fractions))
        rng = np.random.default_rng(seed + k)
        model.train()
        for _ in range(epochs):
            order = rng.permutation(train)
            for start in range(0, len(order), 16):
                idx = order[start:start + 16]
                a, ref = pooled(model, [answers[i] for i in idx], 128), pooled(model, [refs[i] for i in idx], 256)
                cos = (a * ref).sum(1)
                loss = torch.nn.functional.mse_loss(cos, y[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        model.eval()
        with torch.no_grad():
            for start in range(0, len(test), 64):
                idx = test[start:start + 64]
                a = pooled(model, [answers[i] for i in idx], 256)
                out[idx, 0] = (a * pooled(model, [refs[i] for i in idx], 256)).sum(1).numpy()
        print(f"  bi-encoder fold {k + 1} of {len(folds)} fine-tuned", file=sys.stderr, flush=True)
    return out


def alternatives_variants(rows: list[LabeledAnswer], embedder, seed: int, y, groups, folds, make) -> list[tuple]:
    """Accuracy of the classifier ``make()`` (the shipped form) on signals computed with the reading of offered
    alternatives changed."""
    import re

    from grader.scoring import features

    examples = re.compile(features.OFFERS_ALTERNATIVES.pattern + r"|\be\.g\.|\bsuch\s+as\b|\bfor\s+example\b|"
                          r"\bz\.\s?B\.|\bzum\s+Beispiel\b|\bbeispielsweise\b", re.IGNORECASE)
    kept = features.OFFERS_ALTERNATIVES, features.ALTERNATIVES_CREDITED
    out = []
    for name, pattern, credited in [("alternatives not read", re.compile(r"(?!)"), kept[1]),
                                    ("alternatives, 1 sentence credited", kept[0], 1),
                                    ("alternatives, 3 sentences credited", kept[0], 3),
                                    ("alternatives, also 'e.g.' and 'such as'", examples, kept[1])]:
        features.OFFERS_ALTERNATIVES, features.ALTERNATIVES_CREDITED = pattern, credited
        try:
            _, _, _, data = training_data(rows, target="label", embedder=embedder, rubric=None,
                                          example_counts=(0,), seed=seed, label_col="label")
        finally:
            features.OFFERS_ALTERNATIVES, features.ALTERNATIVES_CREDITED = kept
        if list(data.groups) != list(groups) or list(data.y) != list(y):
            raise SystemExit("the recomputed signals' rows do not line up")
        out.append((name, held_out(data.X[:, OWN], y, groups, folds, make)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--biencoder", action="store_true", help="also fine-tune a bi-encoder in each fold (slow)")
    parser.add_argument("--alternatives", action="store_true",
                        help="also recompute the signals with offered alternatives read otherwise")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = read_corpus(args.corpus)
    folds = [{rows[i].question_id for i in test} for _, test in splits(rows, "unseen-questions", args.folds, args.seed)]
    embedder = CachingEmbedder(get_embedder())
    _, _, _, data = training_data(rows, target="label", embedder=embedder, rubric=None,
                                  example_counts=(0,), seed=args.seed, label_col="label")
    X, y, groups = data.X[:, OWN], data.y, data.groups
    graded = [r for r in rows if normalize(r.answer)]  # the rows training_data keeps, in its order
    if [r.question_id for r in graded] != list(groups):
        raise SystemExit("the signals' rows do not line up with the corpus's answered rows")
    qref = question_reference_cosine(graded, embedder)
    ref_sim = X[:, [OWN.index(FEATURES.index("ref_sim"))]]
    print(f"{len(y)} answers, {len(np.unique(groups))} questions, {args.folds} folds of unseen questions")

    def logistic(C=0.1):
        return lambda: LogisticRegression(C=C, max_iter=2000)

    def trees():
        return HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=200)

    results = [("shipped form (C 0.1)", held_out(X, y, groups, folds, logistic()))]
    results += [(f"C {C}", held_out(X, y, groups, folds, logistic(C))) for C in (0.01, 1.0)]
    results += [
        ("class-relative (signals and their z within the question)",
         held_out(np.hstack([X, per_question(X, groups, "z")]), y, groups, folds, logistic())),
        ("class ranks (signals and their rank within the question)",
         held_out(np.hstack([X, per_question(X, groups, "rank")]), y, groups, folds, logistic())),
        ("question means (signals and the question's mean)",
         held_out(np.hstack([X, per_question(X, groups, "mean")]), y, groups, folds, logistic())),
        ("boosted trees", held_out(X, y, groups, folds, trees)),
        ("regressed fraction, cut at 0.25 / 0.75", regressed(X, y, data.fractions, groups, folds)),
        ("question-reference cosine beside the signals", held_out(np.hstack([X, qref]), y, groups, folds, logistic())),
        ("ref_sim less the question-reference cosine",
         held_out(np.hstack([X, ref_sim - qref]), y, groups, folds, logistic())),
    ]
    if args.alternatives:
        results += alternatives_variants(rows, embedder, args.seed, y, groups, folds, logistic())
    if args.biencoder:
        tuned = biencoder_cosine(graded, data.fractions, folds, args.seed)
        results.append(("fine-tuned bi-encoder's cosine beside the signals",
                        held_out(np.hstack([X, tuned]), y, groups, folds, logistic())))
    for name, accuracy in results:
        print(f"{name:60s} accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
