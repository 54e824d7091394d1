"""Orchestration: a rubric's answers are de-duplicated, encoded in chunks and scored, here or in worker processes.

>>> from grader.engine import Grader
"""

from grader.encoding.registry import get_embedder
from grader.engine.grader import Grader
from grader.scoring.combiner import load_combiner

__all__ = ["Grader", "get_embedder", "load_combiner"]
