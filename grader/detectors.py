"""Detectors of answers that try to game the grader, or cannot be graded as written.

Each detector looks at one answer and may return a :class:`Detection`: a flag
with its reason and, when the attack is certain, a cap on the grade fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from grader.result import Flag
from grader.text import Analysis


@dataclass(frozen=True)
class Detection:
    """A flag and the highest grade fraction the answer may keep (1.0: no cap)."""

    flag: Flag
    cap: float = 1.0


@dataclass(frozen=True)
class AnswerView:
    """What detectors may look at: the text, its analysis, its signals and the question's."""

    text: str
    analysis: Analysis
    signals: dict[str, float]
    prompt_stems: frozenset
    reference_stems: frozenset
    key_found: int
    key_total: int


Detector = Callable[[AnswerView], "Detection | None"]


def restates_question(view: AnswerView) -> Detection | None:
    """The answer only copies or rewords the question: it earns nothing."""
    stems = view.analysis.content_stems()
    if not stems or not view.prompt_stems:
        return None
    new = stems - view.prompt_stems - view.reference_stems
    copied = len(stems & view.prompt_stems) / len(stems)
    if copied >= 0.6 and len(new) <= 2 and view.signals.get("q_sim", 0.0) >= 0.75 \
            and view.signals.get("ref_minus_q", 0.0) <= 0.05:
        return Detection(Flag("restates_question", "the answer restates the question without answering it"), 0.0)
    return None


DETECTORS: list[Detector] = [restates_question]


def detect(view: AnswerView) -> list[Detection]:
    """Run every registered detector on one answer."""
    found = []
    for detector in DETECTORS:
        hit = detector(view)
        if hit is not None:
            found.append(hit)
    return found


def cap_of(detections: list[Detection]) -> float:
    """The tightest cap among ``detections``."""
    return float(np.min([d.cap for d in detections])) if detections else 1.0
