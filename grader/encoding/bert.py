"""A plain BERT encoder in torch, loaded straight from ``model.safetensors``.

``transformers`` spends seconds importing its model machinery before the first
forward pass; for the built-in encoder that was most of a cold start. BERT's
forward pass is small enough to write out: embeddings, then per layer
self-attention and a feed-forward block, each with a residual and LayerNorm.
Module names mirror Hugging Face's, so the weights load by name (strictly) and
int8 quantisation picks the same layers. A test checks the vectors against
``SentenceTransformer.encode``. Other architectures go through ``transformers``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from grader.encoding.tokenizer import FastTokenizer  # noqa: F401  (lives there so it imports without torch)


def supports(folder: Path) -> bool:
    """Whether ``folder`` holds a BERT this module can run (absolute positions, GELU, fast tokenizer)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and (folder / "tokenizer.json").is_file() and (folder / "model.safetensors").is_file())


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.self = nn.Module()
        self.self.query = nn.Linear(hidden, hidden)
        self.self.key = nn.Linear(hidden, hidden)
        self.self.value = nn.Linear(hidden, hidden)
        self.output = nn.Module()
        self.output.dense = nn.Linear(hidden, hidden)
        self.output.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t):
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.self.query(x)), split(self.self.key(x)), split(self.self.value(x))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, d)
        return self.output.LayerNorm(self.output.dense(context) + x)


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float):
        super().__init__()
        self.attention = _Attention(hidden, heads, eps)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(hidden, inner)
        self.output = nn.Module()
        self.output.dense = nn.Linear(inner, hidden)
        self.output.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output.LayerNorm(self.output.dense(F.gelu(self.intermediate.dense(x))) + x)


class Bert(nn.Module):
    """BERT encoder returning the last hidden state."""

    def __init__(self, config: dict):
        super().__init__()
        hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(config["vocab_size"], hidden)
        self.embeddings.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
        self.embeddings.token_type_embeddings = nn.Embedding(config.get("type_vocab_size", 2), hidden)
        self.embeddings.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(
            _Layer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"]))
        self.hidden_size = hidden
        self.max_positions = config["max_position_embeddings"]

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        emb = self.embeddings
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        x = emb.word_embeddings(input_ids) + emb.position_embeddings(positions)[None] + emb.token_type_embeddings(types)
        x = emb.LayerNorm(x)
        mask = attention_mask[:, None, None, :].bool()  # True where a key may be attended to
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x


def load_bert(folder: Path) -> Bert:
    """A :class:`Bert` with the folder's weights (unused pooler weights ignored)."""
    from safetensors.torch import load_file

    model = Bert(json.loads((folder / "config.json").read_text()))
    state = {k: v for k, v in load_file(str(folder / "model.safetensors")).items()
             if not k.startswith("pooler.") and not k.endswith("position_ids")}
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()
