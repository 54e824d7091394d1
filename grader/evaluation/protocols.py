"""Agreement with human graders under a named protocol, with baselines side by side.

Protocols (:func:`evaluate`):

* ``zero-shot``: a fitted combiner (default ``grader/models/default.json``) grades every row.
* ``train-test``: train on one corpus, test on another (SemEval-2013 style).
* ``unseen-answers``: K folds within each question; the answers of a question are
  split across folds.
* ``unseen-questions``: K folds grouped by ``question_id`` (GroupKFold).

Which graded examples a test question gets:

* with ``examples_per_question=N`` (and at each learning-curve point N), N of the
  question's own labelled answers become its graded examples and the rest are
  scored (at least one answer is always scored);
* otherwise, the question's answers in the training set, when it has any (the
  instructor graded those); a question never seen in training gets none.

Each fold trains a fresh combiner (on examples drawn per ``example_counts``, so it
learns to use them) and the two baselines on the same training rows. Test answers
go through the full engine, exactly as ``grader score`` would grade them. Every
distinct text is encoded once per run and signals are cached by question and answer.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from pydantic import ValidationError
from sklearn.model_selection import GroupKFold

from grader.evaluation.baselines import BASELINES, ThresholdBaseline
from grader.evaluation.concepts import concept_metrics
from grader.evaluation.corpus import LabeledAnswer
from grader.encoding.registry import get_embedder
from grader.engine import Grader
from grader.engine.scorer import load_combiner_spec
from grader.errors import ConfigError, GraderError, InputDataError
from grader.scoring.features import FEATURES
from grader.scoring.combiner import LinearCombiner
from grader.evaluation.metrics import label_metrics, score_metrics
from grader.rubric import ShortAnswerQuestion
from grader.evaluation.training import (DEFAULT_C, DEFAULT_EXAMPLE_COUNTS, DEFAULT_IGNORED, CachingEmbedder, build_dataset, fit_combiner,
                             label_fractions_of, questions_for, resolve_target, score_class, score_levels, targets,
                             with_examples)

log = logging.getLogger(__name__)
PROTOCOLS = ("zero-shot", "train-test", "unseen-answers", "unseen-questions")
SYSTEMS = ("grader",) + BASELINES
MAX_QWK_LEVELS = 21


@dataclass
class Predictions:
    """One system's grades of the scored rows at one number of examples per question."""

    rows: list[LabeledAnswer] = field(default_factory=list)
    true: list[str] = field(default_factory=list)
    pred: list[str] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    pred_fraction: list[float] = field(default_factory=list)
    fold: list[int] = field(default_factory=list)
    examples: list[int] = field(default_factory=list)
    results: list = field(default_factory=list)  # the grader's GradeResult of each row (None for a baseline)
    questions: list = field(default_factory=list)  # the question each row was graded against

    def add(self, row, true, pred, confidence, fraction, fold, examples, result=None, question=None) -> None:
        """Record one graded row."""
        self.results.append(result)
        self.questions.append(question)
        self.rows.append(row)
        self.true.append(true)
        self.pred.append(pred)
        self.confidence.append(float(confidence))
        self.pred_fraction.append(float(fraction))
        self.fold.append(fold)
        self.examples.append(examples)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Human and predicted scores on the human scale, for rows with a human score."""
        keep = [i for i, r in enumerate(self.rows) if r.fraction is not None and np.isfinite(self.pred_fraction[i])]
        true = np.array([self.rows[i].score for i in keep], dtype=np.float64)
        pred = np.array([self.pred_fraction[i] * self.rows[i].max_score for i in keep], dtype=np.float64)
        return true, pred

    def metrics(self, labels: list[str] | None = None) -> dict:
        """Label metrics (with coverage) and, where humans gave scores, score metrics."""
        if not self.true:
            return {"n": 0}
        out = label_metrics(self.true, self.pred, groups=[r.question_id for r in self.rows],
                            confidence=self.confidence, labels=labels)
        true, pred = self.scores()
        if len(true):
            levels = np.unique(np.round(true, 6))
            if len(levels) > MAX_QWK_LEVELS:
                levels = np.linspace(true.min(), true.max(), 11)
            out["score"] = score_metrics(true, pred, levels)
        return out


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate`: a JSON-ready summary and every prediction behind it."""

    summary: dict
    predictions: dict  # (system, N or None) -> Predictions


def _seed(*parts) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def splits(rows: list[LabeledAnswer], protocol: str, folds: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """(train indices, test indices) of each fold of ``protocol`` over ``rows``."""
    if protocol == "unseen-questions":
        groups = np.array([r.question_id for r in rows], dtype=object)
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ConfigError(f"`cv` unseen-questions needs at least 2 questions; the corpus has {n_groups}",
                              field="cv")
        splitter = GroupKFold(n_splits=min(folds, n_groups), shuffle=True, random_state=seed)
        return [(list(a), list(b)) for a, b in splitter.split(np.zeros(len(rows)), groups=groups)]
    if protocol == "unseen-answers":
        fold_of = np.zeros(len(rows), dtype=int)
        by_q: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            by_q.setdefault(r.question_id, []).append(i)
        for qid, idx in by_q.items():
            order = np.random.default_rng(_seed(seed, qid)).permutation(idx)
            fold_of[order] = np.arange(len(order)) % folds
        out = [(list(np.flatnonzero(fold_of != k)), list(np.flatnonzero(fold_of == k))) for k in range(folds)]
        return [(a, b) for a, b in out if b]
    raise ConfigError(f"`cv` must be one of ('unseen-answers', 'unseen-questions'). Got '{protocol}'.", field="cv")


def evaluate(rows: list[LabeledAnswer], *, target: str | None = None, train_rows: list[LabeledAnswer] | None = None,
             combiner: LinearCombiner | str | None = None, cv: str | None = None, folds: int = 5,
             examples_per_question: int | None = None, learning_curve=(), seed: int = 0, rubric=None,
             embedder=None, example_counts=DEFAULT_EXAMPLE_COUNTS, C: float = DEFAULT_C, class_weight=None,
             label_col: str = "label", ignore=DEFAULT_IGNORED, concepts: dict | None = None,
             concepts_source: str | None = None, corpus_sha256: str | None = None,
             train_sha256: str | None = None, finetune=None) -> Evaluation:
    """Grade ``rows`` under a protocol and compare with the human labels or scores.

    ``cv`` ('unseen-answers' | 'unseen-questions') with ``folds``, or ``train_rows``, train
    fresh combiners; otherwise ``combiner`` (default: the shipped one) is used as is.
    ``concepts`` (from :func:`~grader.evaluation.concepts.read_concepts`, read from
    ``concepts_source``) adds concept and misconception agreement under the key ``concepts``.
    ``corpus_sha256`` and ``train_sha256`` (the files' sha256) let it warn when a model is
    tested on its own training file; every warning is logged and listed under ``warnings``.
    ``finetune`` (a :class:`~grader.finetune.train.FinetuneConfig`) fine-tunes a cross-encoder in
    each fold on the fold's training rows only and stacks its signals under the combiner
    (:mod:`grader.evaluation.stacking`).
    """
    started = time.perf_counter()
    if cv is not None and train_rows is not None:
        raise ConfigError("use either `cv` or `train_rows`, not both", field="cv")
    if finetune is not None and cv is None and train_rows is None:
        raise ConfigError("`finetune` trains a scorer per fold: use it with `cv` or `train_rows`", field="finetune")
    if combiner is not None and (cv is not None or train_rows is not None):
        raise ConfigError("`combiner` evaluates a trained model as is; it cannot be combined with `cv` or `train_rows`, "
                          "which train a fresh one per fold", field="combiner")
    if cv is not None and folds < 2:
        raise ConfigError(f"`folds` must be >= 2. Got {folds}.", field="folds")
    points = [examples_per_question] + [int(n) for n in learning_curve if int(n) != examples_per_question]
    if any(n is not None and n < 0 for n in points):
        raise ConfigError(f"numbers of examples per question must be >= 0. Got {points}.", field="examples")
    protocol = cv or ("train-test" if train_rows is not None else "zero-shot")
    target = resolve_target(rows, target)
    if train_rows is not None:
        resolve_target(train_rows, target)
    rows_given = len(rows)
    skipped = _Skipped({id(r) for r in train_rows or ()})
    questions = _questions(rows + (train_rows or []), rubric, skipped)
    rows = [r for r in rows if r.question_id in questions]
    if train_rows is not None:
        train_rows = [r for r in train_rows if r.question_id in questions]
    if not rows:
        raise InputDataError(f"no row can be graded: {skipped.rows[0]['reason']}" if skipped.rows
                             else "no row to grade")
    warnings = _data_warnings(rows, questions, rubric, corpus_sha256, train_sha256, combiner, protocol)
    all_rows = rows + (train_rows or [])
    levels = score_levels(all_rows) if target == "score" else None
    classes = targets(rows, target, levels)

    embedder = CachingEmbedder(embedder if embedder is not None else get_embedder())
    signals = Grader.for_signals(embedder)
    _warm(embedder, list(dict.fromkeys(signals.clip(r.answer)[0] for r in all_rows if r.answer.strip())))
    encoded = time.perf_counter()

    if protocol in ("zero-shot", "train-test"):
        folds_ = [(None, list(range(len(rows))))]
    else:
        folds_ = splits(rows, protocol, folds, seed)
    predictions = {(s, n): Predictions() for s in SYSTEMS for n in points}
    cache: dict = {}
    fitted = []
    relabelled: dict[str, list[str]] = {}
    corpus_fractions = label_fractions_of(rows) if target == "label" else {}  # each corpus label's mean grade
    for k, (train_idx, test_idx) in enumerate(folds_):
        if protocol == "zero-shot":
            train = []
            zero_shot_scorer, model = load_combiner_spec(combiner)  # a scorer folder, a JSON path or a combiner
            meta = getattr(model, "metadata_", None) or {}
            trained_on = {meta.get("corpus_fingerprint"), *(meta.get("corpus_fingerprints") or {}).values()}
            if corpus_sha256 and corpus_sha256 in trained_on:
                warnings.append(_warn("the combiner was trained on this very file (same sha256): these figures are "
                                      "training figures, not agreement on unseen answers"))
        else:
            train = train_rows if protocol == "train-test" else [rows[i] for i in train_idx]
            model = None
        systems = _fit_systems(train, target, levels, questions, embedder, model, example_counts, seed, C,
                               class_weight, cache, ignore, skipped, finetune,
                               {rows[i].question_id for i in test_idx})
        if protocol == "zero-shot" and zero_shot_scorer is not None:
            systems["scorer"] = zero_shot_scorer
        fitted.append(systems)
        test = [i for i in test_idx if classes[i] is not None]
        relabel = _Relabel(corpus_fractions, classes, systems["grader"]) if target == "label" else None
        if relabel is not None and relabel.mapped:
            relabelled.update(relabel.mapped)
        for n in points:
            _grade_fold(systems, embedder, [rows[i] for i in test], [classes[i] for i in test], train, n, questions,
                        target, levels, seed, k, predictions, skipped, relabel)
        log.info("fold %d/%d done", k + 1, len(folds_))
    graded = time.perf_counter()

    train_labels = set().union(*(set(map(str, s["grader"].classes_)) for s in fitted))
    true_labels = sorted({c for c in classes if c is not None})
    labels = sorted((train_labels - set(relabelled)) | set(true_labels))
    main = {s: predictions[(s, examples_per_question)].metrics(labels) for s in SYSTEMS if s in fitted[0]}
    curve = []
    for n in points[1:] if learning_curve else []:
        entry = {"examples_per_question": n}
        for s in SYSTEMS:
            if s in fitted[0]:
                m = predictions[(s, n)].metrics(labels)
                entry[s] = {key: m.get(key) for key in ("n", "accuracy", "macro_f1", "weighted_f1", "coverage_at_90",
                                                        "coverage_at_95")}
                if "score" in m:
                    entry[s].update({key: m["score"][key] for key in ("pearson", "qwk", "rmse")})
        curve.append(entry)
    if learning_curve and examples_per_question in [int(n) for n in learning_curve]:
        curve.sort(key=lambda e: e["examples_per_question"])
    summary = {
        "protocol": {"name": protocol, "folds": len(folds_) if cv else None, "examples_per_question":
                     examples_per_question, "learning_curve": [int(n) for n in learning_curve] or None,
                     "seed": seed, "example_counts": list(example_counts) if protocol != "zero-shot" else None,
                     "C": C if protocol != "zero-shot" else None, "class_weight": class_weight,
                     "ignored_features": list(ignore) if protocol != "zero-shot" else None},
        "target": target, "label_col": label_col if target == "label" else None,
        "rows": rows_given, "questions": len({r.question_id for r in rows}),
        "rows_not_graded": len(skipped.in_corpus), "skipped_rows": skipped.rows,
        "rows_without_target": sum(c is None for c in classes),
        "labels_seen_in_training": sorted(train_labels),
        "labels_not_seen_in_training": sorted(set(true_labels) - train_labels),
        # the model's labels the corpus does not use -> the corpus labels (by mean grade) that the points choose among
        "labels_mapped": relabelled or None,
        "score_levels": None if levels is None else [float(v) for v in levels],
        "embedding_model": embedder.name, "embedding_sha256": embedder.sha256,
        "embedding_backend": getattr(embedder, "backend", None),
        "systems": main,
        "warnings": warnings,
        "margin": _margins(main),
        "learning_curve": curve or None,
        "finetune": None if finetune is None else {
            "config": {k: v for k, v in vars(finetune).items()},
            "stacking": "combiner fitted on 2-fold cross-fitted scorer signals of each fold's training rows (split "
                        "by answers when the fold's test questions were all seen in training, else by questions), "
                        "with zero weight on them when they did not lower its log loss on held-out questions "
                        "('trust'); test rows scored with the model fine-tuned on every training row of the fold",
            "crossfit_by": [s["scorer"].stack.by for s in fitted if "scorer" in s],
            # per fold: whether the combiner reads the scorer (its signals helped on held-out questions)
            "trust": [s["trust"] for s in fitted if "trust" in s],
            "seconds_per_fold": [round(s["scorer"].stack.seconds, 1) for s in fitted if "scorer" in s]},
        "timing_s": {"encode": round(encoded - started, 2), "grade": round(graded - encoded, 2),
                     "total": round(time.perf_counter() - started, 2), "distinct_texts_encoded": len(embedder)},
    }
    if concepts is not None:
        p = predictions[("grader", examples_per_question)]
        graded = [(r.answer_id, q, res) for r, q, res in zip(p.rows, p.questions, p.results) if res is not None]
        summary["concepts"] = concept_metrics(graded, concepts, source=concepts_source)
        summary["concepts"]["file"] = concepts_source
    if protocol == "zero-shot":
        summary["systems_note"] = "baselines need training data; use `cv` or `train` to compare with them"
    return Evaluation(summary, predictions)


def _warn(text: str) -> str:
    log.warning("%s", text)
    return text


def _data_warnings(rows, questions, rubric, corpus_sha256, train_sha256, combiner, protocol) -> list[str]:
    """What makes the figures mean less than they seem: a test file that is the training file, rows with no key."""
    out = []
    if protocol == "train-test" and corpus_sha256 and corpus_sha256 == train_sha256:
        out.append(_warn("the training file and the evaluated file are the same file (same sha256): these figures "
                         "are training figures, not agreement on unseen answers"))
    if rubric is None:
        bare = [r for r in rows if isinstance(questions.get(r.question_id), ShortAnswerQuestion)
                and not questions[r.question_id].reference_answers]
        if bare:
            ids = sorted({r.question_id for r in bare})
            out.append(_warn(f"{len(bare)} row(s) of question(s) {ids[:10]} have neither a reference answer nor a "
                             f"matching rubric question (give one with --rubric): they are graded from the prompt "
                             f"and graded examples alone"))
    return out


def _margins(main: dict) -> dict:
    """The grader's lead over each baseline on the headline metrics."""
    out = {}
    for b in BASELINES:
        if b in main and main["grader"].get("n"):
            out[b] = {m: main["grader"][m] - main[b][m] for m in ("accuracy", "macro_f1", "weighted_f1")}
    return out


class _Skipped:
    """Rows that cannot be graded, each with its id and the reason, reported once however often they fail.

    One such row must not abort an evaluation of thousands: it is left out of every metric and
    listed in the summary (``skipped_rows``) instead.
    """

    def __init__(self, train_ids: set[int]):
        self._train_ids = train_ids
        self._seen: set[int] = set()
        self.rows: list[dict] = []
        self.in_corpus: set[int] = set()

    def __call__(self, row: LabeledAnswer, reason) -> None:
        if id(row) in self._seen:
            return
        self._seen.add(id(row))
        if id(row) not in self._train_ids:
            self.in_corpus.add(id(row))
        text = reason if isinstance(reason, str) else _reason(reason)
        self.rows.append({"file": "train" if id(row) in self._train_ids else "corpus", "row": row.row,
                          "answer_id": row.answer_id, "question_id": row.question_id, "reason": text})
        log.warning("row %d (answer %s, question %s) cannot be graded and is left out: %s", row.row,
                    row.answer_id, row.question_id, text)
        if not isinstance(reason, str):
            log.debug("the row's error", exc_info=reason)


def _reason(exc: Exception) -> str:
    """An error in one line of at most 300 characters."""
    if isinstance(exc, ValidationError):
        text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    elif isinstance(exc, GraderError):
        text = exc.message
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def _questions(rows: list[LabeledAnswer], rubric, skip: _Skipped) -> dict:
    """The question of each question_id; the rows of a question that cannot be built are skipped."""
    if rubric is not None:
        return questions_for(rows, rubric)  # an id missing from the rubric is the whole run's mistake
    by_q: dict[str, list[LabeledAnswer]] = {}
    for r in rows:
        by_q.setdefault(r.question_id, []).append(r)
    out = {}
    for qid, group in by_q.items():
        try:
            out.update(questions_for(group))
        except Exception as exc:  # noqa: BLE001 - a max_score of 1e308, say: that question's rows only
            reason = f"its question cannot be built: {_reason(exc)}"
            for r in group:
                skip(r, reason)
    return out


def _warm(embedder: CachingEmbedder, texts: list[str]) -> None:
    """Encode ``texts`` up front; where the encoder fails, halve the batch until the culprits are left out.

    A text left out fails again when its row is graded, and that row is reported.
    """
    try:
        embedder.warm(texts)
    except Exception:  # noqa: BLE001
        if len(texts) > 1:
            _warm(embedder, texts[: len(texts) // 2])
            _warm(embedder, texts[len(texts) // 2 :])


def _grade_isolated(grader: Grader, pairs: list) -> list:
    """The grade of each pair, or the exception it raised; halves a failing batch until the culprits are found."""
    try:
        return grader.grade_pairs(pairs)
    except Exception as exc:  # noqa: BLE001 - one bad row must not lose the others
        if len(pairs) == 1:
            return [exc]
        mid = len(pairs) // 2
        return _grade_isolated(grader, pairs[:mid]) + _grade_isolated(grader, pairs[mid:])


def _fit_systems(train, target, levels, questions, embedder, combiner, example_counts, seed, C, class_weight, cache,
                 ignore, skip, finetune=None, test_questions: set | None = None):
    """The grader's combiner and the baselines, fitted on ``train`` (combiner only, as given, when no training)."""
    if combiner is not None:
        return {"grader": combiner}
    fractions = label_fractions_of(train) if target == "label" else {}
    signals = Grader.for_signals(embedder, label_fractions=fractions)
    try:
        data = build_dataset(signals, train, target, questions=questions, example_counts=tuple(example_counts),
                             seed=seed, levels=levels, cache=cache, on_error=skip)
    except InputDataError as exc:
        raise InputDataError(f"training fold: {exc.message}", field=exc.field, source=exc.source) from None
    if len(np.unique(data.y)) < 2:
        raise InputDataError(f"a training fold holds only the {target} {sorted(set(data.y))}; it needs at least 2",
                             field="label" if target == "label" else "score")
    plain = data
    out = {}
    if finetune is not None:
        from grader.evaluation.stacking import FinalScorer, crossfit, fit_stacked, stacked

        # Cross-fit as the test rows are graded: answers of questions seen in training, or new questions.
        seen = {r.question_id for r in train}
        by = "answers" if test_questions is not None and test_questions <= seen else "questions"
        stack = crossfit(train, finetune, final=True, by=by)
        data = stacked(data, stack)
        model, verdict = fit_stacked(data, C=C, class_weight=class_weight, ignore=ignore)
        # as a saved folder does, questions the scorer was not trained on are graded without it
        out["scorer"] = FinalScorer(stack, train, fit_combiner(plain, C=C, class_weight=class_weight, ignore=ignore))
        out["trust"] = verdict
    else:
        model = fit_combiner(data, C=C, class_weight=class_weight, ignore=ignore)
    label_fractions = dict(zip(map(str, model.classes_), model.label_fractions_))
    out["grader"] = model
    for b in BASELINES:
        out[b] = ThresholdBaseline(b, label_fractions).fit(plain.X, plain.y)
    return out


def _test_questions(test, classes, train, n, questions, target, seed, fold):
    """Each test question with its graded examples, and the indices of ``test`` left to score."""
    by_q: dict[str, list[int]] = {}
    for i, r in enumerate(test):
        by_q.setdefault(r.question_id, []).append(i)
    train_by_q: dict[str, list[LabeledAnswer]] = {}
    for r in train:
        if r.answer.strip() and (r.label or r.fraction is not None):
            train_by_q.setdefault(r.question_id, []).append(r)
    out, scored = {}, []
    for qid, idx in by_q.items():
        question = questions[qid]
        if not isinstance(question, ShortAnswerQuestion):
            out[qid] = question
            scored += [(i, 0) for i in idx]
            continue
        if n is None:
            examples = train_by_q.get(qid, [])
            keep = idx
        else:
            usable = [i for i in idx if test[i].answer.strip()]
            order = list(np.random.default_rng(_seed(seed, qid, n, fold)).permutation(usable)) if usable else []
            take = min(n, max(0, len(idx) - 1))
            drawn = set(order[:take])
            examples = [test[i] for i in order[:take]]
            keep = [i for i in idx if i not in drawn]
        out[qid] = with_examples(question, examples, target == "label") if examples else question
        scored += [(i, len(examples)) for i in keep]
    return out, scored


class _Relabel:
    """A model's label in the corpus's labels: a label the corpus does not use (the shipped model's
    ``partially_correct`` on a corpus graded correct/incorrect) becomes the corpus label whose mean grade
    is nearest the answer's points. ``mapped`` names each such label and the labels it may become."""

    def __init__(self, fractions: dict[str, float], classes, model):
        """``fractions``: the mean grade of each of the corpus's labels (:func:`label_fractions_of`)."""
        used = {c for c in classes if c is not None}
        self.targets = sorted((fractions[c], c) for c in used if c in fractions)
        foreign = sorted(str(c) for c in model.classes_ if str(c) not in used)
        self.mapped = {}
        if foreign and len(self.targets) == len(used) >= 2:
            self.mapped = {c: [t for _, t in self.targets] for c in foreign}

    def __call__(self, label: str, fraction: float) -> str:
        if label not in self.mapped or not np.isfinite(fraction):
            return label
        return min(self.targets, key=lambda t: (abs(t[0] - fraction), t[1]))[1]


def _grade_fold(systems, embedder, test, classes, train, n, questions, target, levels, seed, fold,
                predictions, skip, relabel=None) -> None:
    """Grade the scored test rows of one fold at N examples per question with every fitted system
    (``relabel``: a model's labels as the corpus's, :class:`_Relabel`)."""
    test_questions, scored = _test_questions(test, classes, train, n, questions, target, seed, fold)
    grader = Grader(None, embedder=embedder, combiner=systems["grader"], scorer=systems.get("scorer"))
    results = _grade_isolated(grader, [(test_questions[test[i].question_id], test[i].answer) for i, _ in scored])
    for (i, n_ex), res in zip(scored, results):
        row, true = test[i], classes[i]
        if isinstance(res, Exception):
            skip(row, res)
            continue
        frac = res.points / res.max_points if res.max_points else 0.0
        pred = score_class(frac, levels) if target == "score" else relabel(res.label, frac) if relabel else res.label
        predictions[("grader", n)].add(row, true, pred, res.confidence, frac, fold, n_ex, res,
                                       test_questions[row.question_id])
        for b in BASELINES:
            if b not in systems:
                continue
            if not res.signals:  # graded by rule (empty answer, choice question): same for every system
                predictions[(b, n)].add(row, true, pred, res.confidence, frac, fold, n_ex)
                continue
            x = np.array([[res.signals[f] for f in FEATURES]])
            base = systems[b]
            proba = base.predict_proba(x)[0]
            bfrac = float(proba @ base.fractions_) if np.isfinite(base.fractions_).all() else np.nan
            label = str(base.classes_[proba.argmax()])
            predictions[(b, n)].add(row, true, label, proba.max(), bfrac, fold, n_ex)
