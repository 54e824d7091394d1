"""A lean loader for standard sentence-transformers folders (Transformer -> Pooling -> Normalize).

Importing sentence-transformers costs seconds at start-up; most models, the
built-in ones included, are a plain Hugging Face encoder followed by mean/CLS/max
pooling and an optional normalisation. For those, this module loads the encoder
with ``transformers`` alone and reproduces the pipeline exactly (a test checks
the vectors against ``SentenceTransformer.encode``). Any other folder falls back
to sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

_STANDARD = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
             "sentence_transformers.models.Normalize")


def _pooling_mode(config: dict) -> str | None:
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        return mode if mode in ("mean", "cls", "max") else None
    modes = [m for m, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"),
                              ("max", "pooling_mode_max_tokens")) if config.get(key)]
    if len(modes) != 1 or config.get("pooling_mode_mean_sqrt_len_tokens"):
        return None
    return modes[0]


def describe(folder: Path) -> dict | None:
    """The pipeline of a standard folder (pooling mode, normalise, max length), or None if not standard."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        types = [m["type"] for m in modules]
        if not types or types[0] != _STANDARD[0] or types[1:2] != [_STANDARD[1]] or any(t not in _STANDARD for t in types):
            return None
        if modules[0].get("path", "") not in ("", "."):
            return None
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
        sbert = json.loads((folder / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, IndexError):
        return None
    mode = _pooling_mode(pooling)
    if mode is None or sbert.get("do_lower_case"):
        return None
    return {"pooling": mode, "normalize": _STANDARD[2] in types, "max_seq_length": int(sbert.get("max_seq_length", 512))}


def _encoder(folder: Path):
    """(encoder returning the last hidden state, tokenizer, hidden size, max positions)."""
    from grader.encoding import bert

    if bert.supports(folder):
        model = bert.load_bert(folder)
        return model, bert.FastTokenizer(folder), model.hidden_size, model.max_positions
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in CLI output or server logs
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True)

    def run(**features):
        return model(**features, return_dict=True).last_hidden_state

    model.last_hidden = run
    return model, tokenizer, int(model.config.hidden_size), int(getattr(model.config, "max_position_embeddings", 512))


def pool(tokens, attention_mask, spec: dict):
    """The sentence vectors of a batch: ``spec``'s pooling over unmasked tokens, normalised if it says so."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
    if spec["pooling"] == "mean":
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    elif spec["pooling"] == "cls":
        pooled = tokens[:, 0]
    else:
        pooled = tokens.masked_fill(mask == 0, -1e9).max(1).values
    return torch.nn.functional.normalize(pooled, p=2, dim=1) if spec["normalize"] else pooled


def load(folder: Path, spec: dict, device: str):
    """(module, tokenizer, max_seq_length) for a folder that :func:`describe` accepted."""
    import torch

    encoder, tokenizer, hidden, max_positions = _encoder(folder)
    max_len = min(spec["max_seq_length"], max_positions)

    class PooledEncoder(torch.nn.Module):
        """Encoder + pooling + normalisation, returning what sentence-transformers modules return."""

        def __init__(self):
            super().__init__()
            self.transformer = encoder

        def forward(self, features: dict) -> dict:
            run = getattr(self.transformer, "last_hidden", None) or self.transformer
            out = run(**features)
            return {"token_embeddings": out, "sentence_embedding": pool(out, features["attention_mask"], spec)}

    module = PooledEncoder().to(device).eval()
    module.dimension = hidden
    return module, tokenizer, max_len
