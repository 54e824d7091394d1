"""Shared fixtures: one real embedding model per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RUBRIC = ROOT / "rubrics" / "rnn_lstm.yaml"
SAF_EN = SHARED / "data" / "saf_en" / "train.csv"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Property tests keep a CI budget of their own; HYPOTHESIS_PROFILE=long runs many more examples by hand.
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis is a dev extra
    pass
else:
    _hypothesis_settings.register_profile("long", max_examples=2000, deadline=None)
    if os.environ.get("HYPOTHESIS_PROFILE"):
        _hypothesis_settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


@pytest.fixture(scope="session")
def embedder():
    """The real default encoder (all-MiniLM-L6-v2), loaded once per session."""
    from grader.engine import get_embedder

    return get_embedder().load()


@pytest.fixture(scope="session")
def rubric():
    """The example quiz's rubric."""
    from grader.rubric import load_rubric

    return load_rubric(RUBRIC)


@pytest.fixture(scope="session")
def grader(embedder, rubric):
    """A Grader for the example quiz with the shipped default combiner."""
    from grader.engine import Grader

    return Grader(rubric, embedder=embedder)
