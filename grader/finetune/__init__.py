"""A fine-tuned cross-encoder whose predictions are extra signals for the combiner.

* :func:`build_pairs` turns labelled rows into (question + model answer, answer) pairs;
* :func:`finetune` (torch) fine-tunes the cross-encoder, :func:`save` writes its folder
  with ONNX files and a sha256 manifest;
* :class:`CrossEncoderScorer` (ONNX Runtime, no torch) grades with it, and
  :data:`CE_SIGNALS` names the signals it adds.

Torch is imported only by training and export.
"""

from grader.finetune.pairs import Pairs, build_pairs, first_text, question_text
from grader.finetune.scorer import CE_SIGNALS, CrossEncoderScorer, ce_signals, label_values

__all__ = ["CE_SIGNALS", "CrossEncoderScorer", "Pairs", "build_pairs", "ce_signals", "first_text", "finetune",
           "label_values", "question_text", "save", "FinetuneConfig"]


def __getattr__(name):  # torch-backed parts load on first use
    if name in ("finetune", "FinetuneConfig"):
        from grader.finetune import train

        return getattr(train, name)
    if name == "save":
        from grader.finetune.folder import save

        return save
    raise AttributeError(name)
