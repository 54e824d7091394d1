"""Concept-level agreement: the grader's concepts and misconceptions against hand annotations.

An annotation file (``concepts.csv``, see ``../shared/data/seed_q5_concepts/README.md``) has
the columns ``answer_id,item,kind,status,evidence``, one row per answer and rubric item:

* ``kind=concept``: ``item`` is the exact ``text`` of a key phrase; ``status`` is ``stated``
  (positive), ``negated`` or ``absent`` (negative). The grader predicts a concept stated when
  the result's concept is ``found`` and not ``negated``.
* ``kind=misconception``: ``item`` names a misconception of the question; ``status`` is
  ``present`` (positive) or ``absent``. The grader predicts it when the result lists it.
  ``item`` is matched to the rubric by :func:`match_misconception`.

Evidence overlap is the token-level Jaccard index of the grader's evidence and the annotated
span, averaged over true positives that have both.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from grader.errors import InputDataError

COLUMNS = ("answer_id", "item", "kind", "status", "evidence")
STATUSES = {"concept": ("stated", "negated", "absent"), "misconception": ("present", "absent")}
POSITIVE = {"stated", "present"}
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Annotation:
    """One hand-annotated (answer, rubric item) pair."""

    row: int
    answer_id: str
    item: str
    kind: str
    status: str
    evidence: str

    @property
    def positive(self) -> bool:
        return self.status in POSITIVE


def read_concepts(path: str | Path) -> dict[str, list[Annotation]]:
    """The annotations of each answer id; errors name the file, the row and the column."""
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputDataError("concepts file not found", source=str(path)) from None
    out: dict[str, list[Annotation]] = defaultdict(list)
    seen: set[tuple[str, str, str]] = set()
    with fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames
            if not header:
                raise InputDataError("the concepts file is empty (no header row)", source=str(path))
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise InputDataError(f"missing column(s) {missing}; the header has {header}", field=missing[0],
                                     source=str(path))
            for n, raw in enumerate(reader, start=1):
                if None in raw:
                    raise InputDataError(f"row {n} has more fields than the header", source=str(path))
                values = {c: (raw.get(c) or "").strip() for c in COLUMNS}
                for column in ("answer_id", "item"):
                    if not values[column]:
                        raise InputDataError(f"row {n}, column '{column}': empty", field=column, source=str(path))
                kind = values["kind"]
                if kind not in STATUSES:
                    raise InputDataError(f"row {n}, column 'kind': must be one of {tuple(STATUSES)}. Got {kind!r}.",
                                         field="kind", source=str(path))
                status = values["status"]
                if status not in STATUSES[kind]:
                    raise InputDataError(f"row {n}, column 'status': a {kind} must be one of {STATUSES[kind]}. "
                                         f"Got {status!r}.", field="status", source=str(path))
                key = (values["answer_id"], kind, values["item"])
                if key in seen:
                    raise InputDataError(f"row {n}: answer {key[0]!r} already has a {kind} row for {key[2]!r}",
                                         field="item", source=str(path))
                seen.add(key)
                out[values["answer_id"]].append(Annotation(n, values["answer_id"], values["item"], kind, status,
                                                           raw.get("evidence") or ""))
        except UnicodeDecodeError as exc:
            raise InputDataError(f"not UTF-8 text: {exc}", source=str(path)) from None
        except csv.Error as exc:
            raise InputDataError(f"malformed CSV at line {reader.line_num}: {exc}", source=str(path)) from None
    if not out:
        raise InputDataError("the concepts file has a header but no rows", source=str(path))
    return dict(out)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text or "")]


def _stem(word: str) -> str:
    """A crude stem, enough to match 'parameters' with 'parameter' and 'buffers' with 'buffer'."""
    for suffix in ("ing", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def match_misconception(item: str, misconceptions) -> int | None:
    """The index of the rubric misconception an annotation's ``item`` names, or None.

    In order: a misconception whose ``text`` equals ``item`` (case-insensitive); else its
    1-based position when ``item`` is a number; else the one whose text and alternatives
    share the most word stems with ``item`` (words of 3 letters or more), when exactly one
    misconception has that most and it is at least one.
    """
    wanted = item.strip().lower()
    for i, mc in enumerate(misconceptions):
        if mc.text.strip().lower() == wanted:
            return i
    if wanted.isdigit() and 1 <= int(wanted) <= len(misconceptions):
        return int(wanted) - 1
    stems = {_stem(w) for w in _words(item) if len(w) >= 3}
    overlaps = []
    for mc in misconceptions:
        words = {_stem(w) for t in (mc.text, *mc.alternatives) for w in _words(t)}
        overlaps.append(len(stems & words))
    best = max(overlaps, default=0)
    if best == 0 or overlaps.count(best) > 1:
        return None
    return overlaps.index(best)


def jaccard(a: str, b: str) -> float:
    """Token-level Jaccard index of two texts (lower-cased words)."""
    x, y = set(_words(a)), set(_words(b))
    if not x and not y:
        return 1.0
    return len(x & y) / len(x | y)


class _Counts:
    def __init__(self):
        self.tp = self.fp = self.fn = self.tn = 0
        self.overlaps: list[float] = []

    def add(self, truth: bool, pred: bool, overlap: float | None) -> None:
        if truth and pred:
            self.tp += 1
            if overlap is not None:
                self.overlaps.append(overlap)
        elif pred:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    def merge(self, other: "_Counts") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self.overlaps += other.overlaps

    def summary(self) -> dict:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        if p is None or r is None:
            f1 = None
        else:
            f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
        return {"precision": p, "recall": r, "f1": f1, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "evidence_jaccard": sum(self.overlaps) / len(self.overlaps) if self.overlaps else None,
                "evidence_pairs": len(self.overlaps)}


def concept_metrics(graded: list[tuple[str, object, object]], annotations: dict[str, list[Annotation]],
                    source: str | None = None) -> dict:
    """Concept and misconception agreement of graded answers with their annotations.

    ``graded`` holds (answer id, question, result) for each graded row. Answers without
    annotations are counted in ``answers_not_annotated``; an annotation naming an item the
    question does not have raises an :class:`InputDataError` naming its row.
    """
    per_concept: dict[str, _Counts] = {}
    per_mc: dict[str, _Counts] = {}
    seen, not_annotated = set(), 0
    for answer_id, question, result in graded:
        notes = annotations.get(answer_id)
        if not notes:
            not_annotated += 1
            continue
        seen.add(answer_id)
        found = {c.concept: c for c in result.concepts}
        listed = {m.misconception: m for m in result.misconceptions}
        mcs = tuple(getattr(question, "misconceptions", ()))
        for a in notes:
            if a.kind == "concept":
                if a.item not in {kp.text for kp in getattr(question, "key_phrases", ())}:
                    raise InputDataError(f"row {a.row}, column 'item': {a.item!r} is not a key phrase of question "
                                         f"{question.id!r}", field="item", source=source)
                c = found.get(a.item)
                pred = bool(c is not None and c.found and not c.negated)
                overlap = jaccard(c.evidence, a.evidence) if pred and c.evidence and a.evidence.strip() else None
                per_concept.setdefault(a.item, _Counts()).add(a.positive, pred, overlap)
            else:
                k = match_misconception(a.item, mcs)
                if k is None:
                    raise InputDataError(f"row {a.row}, column 'item': {a.item!r} names no single misconception of "
                                         f"question {question.id!r} (match by exact text, 1-based number, or "
                                         f"shared words)", field="item", source=source)
                m = listed.get(mcs[k].text)
                pred = m is not None and not m.uncertain  # an uncertain one is sent to review, not asserted
                overlap = jaccard(m.evidence, a.evidence) if pred and m.evidence and a.evidence.strip() else None
                per_mc.setdefault(mcs[k].text, _Counts()).add(a.positive, pred, overlap)
    micro, mc_micro = _Counts(), _Counts()
    for c in per_concept.values():
        micro.merge(c)
    for c in per_mc.values():
        mc_micro.merge(c)
    return {
        "answers_annotated": len(seen), "answers_not_annotated": not_annotated,
        "annotations_without_answer": sum(1 for a in annotations if a not in seen),
        "micro": micro.summary(),
        "per_concept": {k: v.summary() for k, v in per_concept.items()},
        "misconceptions": mc_micro.summary(),
        "per_misconception": {k: v.summary() for k, v in per_mc.items()},
    }
