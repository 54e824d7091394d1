"""Grading with a fine-tuned scorer folder on ONNX Runtime, without torch.

:class:`CrossEncoderScorer` checks the folder against its manifest, then scores
batches of (first text, answer) pairs: label probabilities and a score fraction.
Pairs are tokenised once, sorted by length and run in padded batches, so little
padding is computed. :func:`ce_signals` turns its predictions into the signals the
combiner reads (:data:`CE_SIGNALS`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from grader.errors import ConfigError, ModelError
from grader.finetune.folder import (COMBINER, NEW_QUESTIONS_COMBINER, ONNX_FILES, read_manifest, verified_bytes,
                                   verify_folder)
from grader.finetune.pairs import question_key
from grader.finetune.tokens import PairTokenizer, length_batches

CE_SIGNALS = (
    "ce_fraction",  # the score head's fraction (the expected fraction under the labels when no score was learned)
    "ce_expected",  # the expected fraction under the label head's probabilities
)
PRECISIONS = tuple(ONNX_FILES)
BATCH_SIZE = 32


class CrossEncoderScorer:
    """A verified fine-tuned scorer folder, run on ONNX Runtime at ``precision`` (int8 or fp32)."""

    def __init__(self, folder: str | Path, precision: str = "int8", threads: int | None = None):
        if precision not in PRECISIONS:
            raise ConfigError(f"`precision` must be one of {PRECISIONS}. Got '{precision}'.", field="precision")
        import onnxruntime as ort

        self.folder = Path(folder)
        self.precision = precision
        self.manifest = read_manifest(self.folder)
        onnx_name = ONNX_FILES[precision]
        tokenizer_json = verified_bytes(self.folder, self.manifest, "tokenizer.json").decode("utf-8")
        model_bytes = verified_bytes(self.folder, self.manifest, onnx_name)
        verify_folder(self.folder, self.manifest, skip=("tokenizer.json", onnx_name))
        meta = self.manifest.get("metadata") or {}
        try:
            self.labels = tuple(str(v) for v in meta["labels"])
            self.label_fractions = {str(k): float(v) for k, v in meta.get("label_fractions", {}).items()}
            self.tokenizer = PairTokenizer(tokenizer_json, int(meta["max_length"]), int(meta.get("pad_id", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"manifest metadata is incomplete: {exc}", source=str(self.folder / "manifest.json")) from None
        self.metadata = meta
        # The combiner that grades questions the scorer was not trained on (engine/scorer.py loads it).
        self.fallback = None
        known = meta.get("training_questions_sha256")  # older folders do not record them
        self._questions = None if known is None else frozenset(known)
        self.sha256 = self.manifest["files"][onnx_name]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types for a malformed graph
            raise ModelError(f"ONNX Runtime cannot load the {precision} scorer: {exc}",
                             source=str(self.folder / onnx_name)) from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        fractions = [self.label_fractions.get(k) for k in self.labels]
        self._values = (np.array(fractions, dtype=np.float64) if self.labels and None not in fractions
                        else None)

    def trained_on(self, question) -> bool | None:
        """Whether the scorer was fine-tuned on answers to ``question`` (same prompt and model answer); None
        for a folder that does not record its questions."""
        if self._questions is None:
            return None
        return question_key(question.prompt, question.reference_answers) in self._questions

    @property
    def combiner_path(self) -> Path | None:
        """The combiner trained with this scorer, when the folder has one (checked with the folder)."""
        return self.folder / COMBINER if COMBINER in self.manifest["files"] else None

    @property
    def new_questions_combiner_path(self) -> Path | None:
        """The combiner for questions the scorer was not trained on, when the folder has one."""
        return self.folder / NEW_QUESTIONS_COMBINER if NEW_QUESTIONS_COMBINER in self.manifest["files"] else None

    def predict(self, firsts: list[str], answers: list[str], batch_size: int = BATCH_SIZE,
                ) -> tuple[np.ndarray, np.ndarray]:
        """(label probabilities (n, labels), score fractions (n,)) of (first text, answer) pairs."""
        if len(firsts) != len(answers):
            raise ValueError(f"`firsts` and `answers` must have the same length. Got {len(firsts)} and {len(answers)}.")
        width = max(1, len(self.labels))
        probs = np.zeros((len(answers), width), np.float32)
        fraction = np.zeros(len(answers), np.float32)
        if not answers:
            return probs, fraction
        encoded = self.tokenizer.encode(list(firsts), list(answers))
        for batch in length_batches([len(ids) for ids, _ in encoded], batch_size):
            feed = self.tokenizer.pad([encoded[i] for i in batch])
            feed = {k: v for k, v in feed.items() if k in self._inputs}
            p, f = self._session.run(["probabilities", "fraction"], feed)
            probs[batch] = p
            fraction[batch] = f
        return probs, fraction

    def signals(self, firsts: list[str], answers: list[str]) -> np.ndarray:
        """The :data:`CE_SIGNALS` of each pair, (n, len(CE_SIGNALS))."""
        return ce_signals(*self.predict(firsts, answers), self._values)


def ce_signals(probs: np.ndarray, fraction: np.ndarray, label_values: np.ndarray | None) -> np.ndarray:
    """:data:`CE_SIGNALS` from a scorer's predictions; ``label_values`` are the labels' grade fractions (or None)."""
    fraction = np.asarray(fraction, dtype=np.float64)
    if label_values is None or probs.shape[1] != len(label_values):
        expected = fraction
    else:
        expected = np.asarray(probs, dtype=np.float64) @ label_values
    return np.stack([fraction, expected], axis=1)


def label_values(labels, label_fractions: dict[str, float]) -> np.ndarray | None:
    """The grade fraction of each label in order, or None when one is unknown."""
    values = [label_fractions.get(k) for k in labels]
    return np.array(values, dtype=np.float64) if labels and None not in values else None
