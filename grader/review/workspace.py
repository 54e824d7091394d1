"""A graded file under review: its answers, the rubric, the review database and the grader.

:class:`Workspace` is what the web app and ``grader export`` call: it builds each
question's page (clusters sorted by doubt, evidence to highlight, suggestions), turns the
instructor's clicks into recorded actions, regrades the answers not yet reviewed with the
instructor's corrections, and hands the decisions to :mod:`grader.files.exports`.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np

from grader.encoding.weights import sha256_of
from grader.errors import InputDataError
from grader.files.batch import FIELDS
from grader.files.exports import Decision, GradedAnswer, export, read_graded
from grader.result import GradeResult
from grader.review.clusters import cluster, representative, suggest
from grader.review.regrade import stated_phrasing, with_corrections
from grader.review.store import Action, AnswerState, Change, ReviewStore, review_path
from grader.review.views import AnswerView, ClusterView, QuestionView, answer_view
from grader.rubric import Rubric, ShortAnswerQuestion
from grader.text import normalize

MAX_COMMENT = 5000
EXPORT_NAMES = {"csv": "final.csv", "moodle": "moodle.csv", "canvas": "canvas.csv", "feedback": "feedback"}
SUGGEST_SHARE, SUGGEST_MIN, SUGGEST_MAX = 0.05, 3, 10  # "Grade these first": 5% of a question's answers, 3 to 10


def machine_of(result: GradeResult) -> dict:
    """A grade as the review stores it: the graded file's columns plus the evidence behind them."""
    fields = [f"{result.points:g}", f"{result.max_points:g}", result.label, f"{result.confidence:g}",
              "true" if result.needs_review else "false", "; ".join(result.concepts_found),
              "; ".join(result.concepts_missing), result.feedback, "; ".join(f.code for f in result.flags)]
    out = dict(zip(FIELDS, fields))
    out["evidence"] = [[c.concept, c.evidence] for c in result.concepts if c.found and c.evidence]
    out["misconceptions"] = [[m.misconception, m.evidence, m.uncertain] for m in result.misconceptions]
    out["uncertain"] = [c.concept for c in result.concepts if c.found and c.uncertain]
    return out


class _Analysis:
    """What a question's page needs beyond the graded file, computed once: evidence, vectors, clusters."""

    def __init__(self, answers: list[GradedAnswer], details: dict[int, dict], keys: list[str],
                 vectors: dict[str, np.ndarray], clusters: dict[int, int]):
        self.answers, self.details, self.keys, self.vectors, self.clusters = answers, details, keys, vectors, clusters


class Workspace:
    """One graded file under review with ``rubric``; the database defaults to ``GRADED.review.sqlite`` beside it.

    ``grader`` (a :class:`~grader.engine.Grader` for ``rubric``) is made on first need.
    """

    def __init__(self, graded: str | Path, rubric: Rubric, grader=None, database: str | Path | None = None):
        self.graded = Path(graded)
        self.rubric = rubric
        self.table = read_graded(self.graded, rubric)
        if not self.table.answers:
            raise InputDataError("the graded file holds no graded answer", source=str(self.graded))
        self.questions = {q.id: q for q in rubric.questions if q.id in self.table.question_ids}
        if not self.questions:
            raise InputDataError(f"none of the file's questions ({', '.join(self.table.question_ids)}) is in rubric "
                                 f"'{rubric.id}'; pass the `rubric` the file was graded with", field="rubric",
                                 source=str(self.graded))
        self.store = ReviewStore(database or review_path(self.graded), sha256_of(self.graded),
                                 {"graded": self.graded.name, "rubric": json.dumps(rubric.model_dump(mode="json"))})
        self._grader = grader
        self._lock = threading.Lock()
        self._analyses: dict[str, _Analysis] = {}
        self.by_question: dict[str, list[GradedAnswer]] = {q: [] for q in self.questions}
        for a in self.table.answers:
            if a.question_id in self.by_question:
                self.by_question[a.question_id].append(a)
        self._rows = {(a.question_id, a.row): a for a in self.table.answers}

    @property
    def grader(self):
        """The grader that explains and regrades (made on first use)."""
        if self._grader is None:
            from grader.engine import Grader

            self._grader = Grader(self.rubric)
        return self._grader

    def close(self) -> None:
        """Close the review database."""
        self.store.close()

    def question(self, question_id: str):
        """The rubric question, or UnknownQuestionError naming the valid ids."""
        if question_id not in self.questions:
            self.rubric.question(question_id)  # raises for an id not in the rubric
            raise InputDataError(f"question '{question_id}' has no answers in {self.graded.name}",
                                 field="question_id")
        return self.questions[question_id]

    # -- analysis ---------------------------------------------------------------------------------
    def _analysis(self, question_id: str) -> _Analysis:
        with self._lock:
            if question_id in self._analyses:
                return self._analyses[question_id]
        question = self.question(question_id)
        answers = self.by_question[question_id]
        keys = [normalize(a.answer) for a in answers]
        distinct = [k for k in dict.fromkeys(keys) if k]
        details: dict[int, dict] = {}
        vectors: dict[str, np.ndarray] = {}
        if isinstance(question, ShortAnswerQuestion) and distinct:
            results = self.grader.grade_answers(question, [a.answer for a in answers])
            details = {a.row: machine_of(r) for a, r in zip(answers, results)}
            texts = {k: next(a.answer for a, kk in zip(answers, keys) if kk == k) for k in distinct}
            matrix = np.asarray(self.grader.embedder.encode([texts[k] for k in distinct]), dtype=np.float32)
            vectors = dict(zip(distinct, matrix))
            labels = cluster(matrix)
        else:
            labels = np.arange(len(distinct))  # choice questions: one cluster per distinct answer
        of_key = dict(zip(distinct, (int(x) + 1 for x in labels)))  # cluster 0 holds the blank answers
        clusters = {a.row: of_key.get(k, 0) for a, k in zip(answers, keys)}
        analysis = _Analysis(answers, details, keys, vectors, clusters)
        with self._lock:
            self._analyses[question_id] = analysis
        return analysis

    def _machine(self, analysis: _Analysis, answer: GradedAnswer, state: AnswerState | None) -> dict:
        """The grader's current grade of an answer: the last regrade, else the graded file with its evidence."""
        if state is not None and state.machine:
            return state.machine
        detail = analysis.details.get(answer.row, {})
        return {**answer.fields, "evidence": detail.get("evidence", []),
                "misconceptions": detail.get("misconceptions", []), "uncertain": detail.get("uncertain", [])}

    # -- pages ------------------------------------------------------------------------------------
    def progress(self) -> dict[str, tuple[int, int]]:
        """(reviewed, answers) per question."""
        states = self.store.states()
        done: dict[str, int] = {}
        for (qid, _), s in states.items():
            if s.reviewed:
                done[qid] = done.get(qid, 0) + 1
        return {q: (done.get(q, 0), len(a)) for q, a in self.by_question.items()}

    def totals(self) -> list[float]:
        """Each student's total of final points (for the histogram)."""
        from grader.files.exports import student_grades

        return [s["total"] for s in student_grades(self.table, self.decisions())]

    def view(self, question_id: str) -> QuestionView:
        """Everything the question's page shows."""
        question = self.question(question_id)
        analysis = self._analysis(question_id)
        states = self.store.states(question_id)
        views: dict[int, AnswerView] = {}
        for a in analysis.answers:
            state = states.get((question_id, a.row))
            views[a.row] = answer_view(question, a, self._machine(analysis, a, state), state,
                                       analysis.clusters[a.row])
        groups: dict[int, list[AnswerView]] = {}
        for v in views.values():
            groups.setdefault(v.cluster, []).append(v)
        clusters = []
        for cid, members in groups.items():
            members.sort(key=lambda v: (v.confidence, v.row))  # stable under decisions, as clusters are
            keys = list(dict.fromkeys(normalize(v.text) for v in members))
            rep = members[0].row
            if analysis.vectors and keys[0]:
                weights = np.array([sum(normalize(v.text) == k for v in members) for k in keys], dtype=float)
                best = keys[representative(np.stack([analysis.vectors[k] for k in keys]), weights)]
                rep = next(v.row for v in members if normalize(v.text) == best)
            clusters.append(ClusterView(cid, members, rep))
        clusters.sort(key=lambda c: c.sort_key)
        reviewed = sum(v.reviewed for v in views.values())
        return QuestionView(question, clusters, reviewed, len(views), self.suggestions(question_id, views),
                            self.store.last_action("regrade", question_id))

    def _answer(self, question_id: str, row: int) -> GradedAnswer:
        answer = self._rows.get((question_id, row))
        if answer is None:
            raise InputDataError(f"question {question_id} has no answer in row {row}", field="row")
        return answer

    def suggestions(self, question_id: str, views: dict[int, AnswerView]) -> list[tuple[AnswerView, str]]:
        """"Grade these first": representatives of what is not yet covered, and the most doubtful answers."""
        analysis = self._analysis(question_id)
        if not analysis.vectors:
            return []
        keys = [k for k in dict.fromkeys(analysis.keys) if k]
        rows_of: dict[str, list[int]] = {}
        for a, k in zip(analysis.answers, analysis.keys):
            if k:
                rows_of.setdefault(k, []).append(a.row)
        done = np.array([any(views[r].reviewed for r in rows_of[k]) for k in keys])
        weights = np.array([len(rows_of[k]) for k in keys], dtype=float)
        doubt = np.array([1.0 - min(views[r].confidence for r in rows_of[k]) for k in keys])
        k = min(SUGGEST_MAX, max(SUGGEST_MIN, math.ceil(SUGGEST_SHARE * len(analysis.answers))))
        picks = suggest(np.stack([analysis.vectors[key] for key in keys]), weights, doubt, k, done)
        return [(views[rows_of[keys[i]][0]], why) for i, why in picks]

    # -- actions ----------------------------------------------------------------------------------
    def accept(self, reviewer: str, question_id: str, seen: dict[int, int]) -> Action:
        """Confirm the grader's points of some answers."""
        analysis = self._analysis(self.question(question_id).id)
        states = self.store.states(question_id)
        changes = []
        for row, version in seen.items():
            machine = self._machine(analysis, self._answer(question_id, row), states.get((question_id, row)))
            changes.append(Change(row, version, {"status": "accepted", "points": float(machine["points"])}))
        return self.store.apply(reviewer, "accept", question_id, changes, {"rows": sorted(seen)})

    def set_points(self, reviewer: str, question_id: str, seen: dict[int, int], points: float) -> Action:
        """Give some answers the instructor's points."""
        question = self.question(question_id)
        if not (isinstance(points, (int, float)) and math.isfinite(points) and 0 <= points <= question.max_points):
            raise InputDataError(f"`points` must be between 0 and {question.max_points:g} (the most question "
                                 f"{question_id} gives). Got {points!r}.", field="points")
        for row in seen:
            self._answer(question_id, row)
        changes = [Change(row, version, {"status": "graded", "points": float(points)}) for row, version in seen.items()]
        return self.store.apply(reviewer, "points", question_id, changes, {"rows": sorted(seen), "points": points})

    def mark_concept(self, reviewer: str, question_id: str, row: int, version: int, concept: str,
                     stated: bool | None) -> Action:
        """Mark a concept as stated (True) or not stated (False) in one answer; None clears the mark."""
        question = self.question(question_id)
        names = [k.text for k in getattr(question, "key_phrases", ())]
        if concept not in names:
            raise InputDataError(f"`concept` must be one of the concepts of question {question_id}: "
                                 f"{'; '.join(names) or 'it has none'}. Got {concept!r}.", field="concept")
        self._answer(question_id, row)
        current = dict(self.store.states(question_id).get((question_id, row), AnswerState(question_id, row)).concepts)
        if stated is None:
            current.pop(concept, None)
        else:
            current[concept] = bool(stated)
        return self.store.apply(reviewer, "concept", question_id, [Change(row, version, {"concepts": current})],
                                {"row": row, "concept": concept, "stated": stated})

    def comment(self, reviewer: str, question_id: str, row: int, version: int, text: str) -> Action:
        """Leave a comment for the student on one answer."""
        self.question(question_id)
        self._answer(question_id, row)
        if len(text) > MAX_COMMENT:
            raise InputDataError(f"`comment` must be at most {MAX_COMMENT} characters. Got {len(text)}.",
                                 field="comment")
        return self.store.apply(reviewer, "comment", question_id, [Change(row, version, {"comment": text.strip()})],
                                {"row": row})

    def undo(self, reviewer: str) -> Action | None:
        """Undo the reviewer's newest action."""
        return self.store.undo(reviewer)

    def regrade(self, reviewer: str, question_id: str) -> Action:
        """Regrade the answers not yet reviewed, with the reviewed ones as graded examples and the concept marks."""
        question = self.question(question_id)
        if not isinstance(question, ShortAnswerQuestion):
            raise InputDataError(f"question {question_id} is a choice question: its grades come from the key, "
                                 "so there is nothing to regrade", field="question_id")
        analysis = self._analysis(question_id)
        states = self.store.states(question_id)
        graded, phrasings, rest = [], {}, []
        for a in analysis.answers:
            state = states.get((question_id, a.row))
            machine = self._machine(analysis, a, state)
            if state is not None and state.reviewed and a.answer.strip():
                graded.append((a.answer, state.points))
            if state is not None:
                evidence = dict((c, e) for c, e in machine.get("evidence", []))
                for concept, stated in state.concepts.items():
                    if stated:
                        text = stated_phrasing(a.answer, concept, evidence.get(concept), self.grader.embedder,
                                               self.grader.language)
                        if text:
                            phrasings.setdefault(concept, []).append(text)
            if state is None or not state.reviewed:
                rest.append((a, state.version if state else 0, machine))
        corrected = with_corrections(question, graded, phrasings)
        results = self.grader.grade_answers(corrected, [a.answer for a, _, _ in rest])
        changes, report = [], []
        for (a, version, old), result in zip(rest, results):
            new = machine_of(result)
            if any(new[f] != old.get(f) for f in ("points", "label", "concepts_found")):
                changes.append(Change(a.row, version, {"machine": new}))
                report.append({"row": a.row, "student": a.student, "old": old.get("points"), "new": new["points"],
                               "old_label": old.get("label"), "new_label": new["label"]})
        detail = {"examples": len(graded), "phrasings": sum(map(len, phrasings.values())), "regraded": len(rest),
                  "changes": report}
        # recorded even when no grade moved: the page's "last regrade" then says so, not the one before
        return self.store.apply(reviewer, "regrade", question_id, changes, detail, skip_stale=True, record_empty=True)

    # -- export -----------------------------------------------------------------------------------
    def decisions(self) -> dict[tuple[str, int], Decision]:
        """The review's decisions for :func:`grader.files.exports.export`."""
        return decisions_of(self.store.states())

    def export(self, fmt: str, out: str | Path) -> Path:
        """Write one export of the reviewed file."""
        return export(self.table, fmt, out, self.decisions(), prompts={q.id: q.prompt for q in self.rubric.questions},
                      title=self.rubric.title or self.rubric.id, assignment=self.rubric.title or self.rubric.id)


def decisions_of(states: dict[tuple[str, int], AnswerState]) -> dict[tuple[str, int], Decision]:
    """Decisions for the exports from the review's answer states."""
    out = {}
    for key, s in states.items():
        fields = {k: v for k, v in (s.machine or {}).items() if k in FIELDS} or None
        if s.points is None and not s.comment and not fields and not s.concepts:
            continue
        source = "accepted" if s.status == "accepted" else "instructor"
        out[key] = Decision(s.points, source, s.comment, fields, dict(s.concepts) or None)
    return out


def export_reviewed(graded: str | Path, fmt: str, out: str | Path | None = None, rubric: Rubric | None = None,
                    assignment: str | None = None) -> Path:
    """Export a graded file with the decisions of its review, if it has one; returns what was written.

    The rubric defaults to the one the review was started with; without either, a wide
    file's feedback pages show grades without the answers. ``out`` defaults to a name
    beside the graded file (``GRADED.moodle.csv``, ``GRADED.feedback/``...).
    """
    from grader.files.exports import FORMATS
    from grader.rubric import parse_rubric

    graded = Path(graded)
    if fmt not in FORMATS:
        raise InputDataError(f"`format` must be one of {', '.join(FORMATS)}. Got {fmt!r}.", field="format")
    stem = graded.name.removesuffix(".csv")
    out = Path(out) if out else graded.with_name(f"{stem}.{EXPORT_NAMES[fmt]}")
    database = review_path(graded)
    decisions = {}
    if database.exists():
        store = ReviewStore(database, sha256_of(graded))
        try:
            if rubric is None and store.meta().get("rubric"):
                rubric = parse_rubric(json.loads(store.meta()["rubric"]), source=str(database))
            decisions = decisions_of(store.states())
        finally:
            store.close()
    table = read_graded(graded, rubric)
    name = (rubric.title or rubric.id) if rubric is not None else stem
    return export(table, fmt, out, decisions, prompts={q.id: q.prompt for q in rubric.questions} if rubric else None,
                  title=name, assignment=assignment or name)
