"""The cross-encoder in torch: a pre-trained encoder read from verified weights, a label head and a score head.

Only training and export import this module; grading runs the ONNX files
(:mod:`grader.finetune.scorer`) without torch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from grader.errors import ModelError


def load_encoder(folder: Path, config=None):
    """The Hugging Face encoder of ``folder`` with eager attention (ONNX Runtime fuses its pattern).

    With ``config`` (a saved fine-tuned model's), the architecture is built from it and the
    weights are left for the caller to load.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        if config is not None:
            return AutoModel.from_config(AutoConfig.from_pretrained(str(config)), attn_implementation="eager")
        return AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager")
    except Exception as exc:  # the libraries raise many types for a broken folder
        raise ModelError(f"cannot load the encoder to fine-tune: {exc}", source=str(folder)) from exc


class CrossEncoder(nn.Module):
    """Mean-pooled encoder of a (first text, answer) pair -> label logits and a score fraction in [0, 1]."""

    def __init__(self, encoder, n_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.label_head = nn.Linear(hidden, max(1, n_labels))
        self.score_head = nn.Linear(hidden, 1)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """(label logits (batch, labels), score fraction (batch,))."""
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        hidden = self.encoder(**features, return_dict=True).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = self.dropout(pooled)
        return self.label_head(pooled), torch.sigmoid(self.score_head(pooled)).squeeze(-1)

    def freeze_lower(self, layers: int) -> None:
        """Keep the embeddings and the lowest ``layers`` transformer layers as pre-trained."""
        if layers <= 0:
            return
        for p in self.encoder.embeddings.parameters():
            p.requires_grad_(False)
        for layer in self.encoder.encoder.layer[:layers]:
            for p in layer.parameters():
                p.requires_grad_(False)


class Exported(nn.Module):
    """The graph written to ONNX: label probabilities and the score fraction."""

    def __init__(self, model: CrossEncoder):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        logits, fraction = self.model(input_ids, attention_mask, token_type_ids)
        return torch.softmax(logits, dim=-1), fraction



def input_names(model: CrossEncoder) -> tuple[str, ...]:
    """The encoder's inputs: BERT reads token type ids, MPNet does not."""
    import inspect

    return tuple(inspect.signature(model.encoder.forward).parameters)
