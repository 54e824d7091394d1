"""A model folder's ``tokenizer.json`` through the ``tokenizers`` library, without torch or transformers.

Kept apart from :mod:`grader.encoding.bert` so that the ONNX Runtime int8 encoder can tokenise
without importing torch (seconds of a cold start).
"""

from __future__ import annotations

import json
from pathlib import Path

from grader.text import valid_text


class FastTokenizer:
    """The folder's ``tokenizer.json`` through the ``tokenizers`` library, with the calls the embedder makes."""

    model_input_names = ("input_ids", "token_type_ids", "attention_mask")

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()
        config = {}
        try:
            config = json.loads((folder / "tokenizer_config.json").read_text())
        except (OSError, ValueError):
            pass
        pad = config.get("pad_token", "[PAD]")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self._tok.token_to_id(pad) or 0

    def __call__(self, texts, add_special_tokens: bool = True, **_) -> dict:
        single = isinstance(texts, str)
        # The tokenizers library raises TypeError on a lone surrogate; the engine cleans its texts,
        # and this keeps any other caller from a crash.
        texts = [valid_text(texts)] if single else [valid_text(t) for t in texts]
        batch = self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)
        out = {"input_ids": [e.ids for e in batch], "offset_mapping": [e.offsets for e in batch]}
        return {k: v[0] for k, v in out.items()} if single else out
