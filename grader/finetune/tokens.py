"""Pair tokenisation shared by training and grading, through the ``tokenizers`` library (no torch).

Both texts are cut together to ``max_length`` tokens, the longer one first
(``longest_first``), so a long model answer gives way before a short student answer does.
"""

from __future__ import annotations

import json

import numpy as np

from grader.text import valid_text


class PairTokenizer:
    """Token ids of (first text, answer) pairs, and padded batches of them."""

    def __init__(self, tokenizer_json: str, max_length: int, pad_id: int = 0):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(tokenizer_json)
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=int(max_length), strategy="longest_first")
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)

    @staticmethod
    def pad_id_of(tokenizer_config: str | None, tokenizer_json: str) -> int:
        """The padding token's id from the folder's tokenizer files (0 when they do not say)."""
        from tokenizers import Tokenizer

        pad = "[PAD]"
        try:
            config = json.loads(tokenizer_config or "{}")
            pad = config.get("pad_token", pad)
            pad = pad.get("content") if isinstance(pad, dict) else pad
        except ValueError:
            pass
        return Tokenizer.from_str(tokenizer_json).token_to_id(pad) or 0

    def encode(self, firsts: list[str], answers: list[str]) -> list[tuple[list[int], list[int]]]:
        """(token ids, token type ids) of each pair."""
        batch = self._tok.encode_batch([(valid_text(f), valid_text(a)) for f, a in zip(firsts, answers)])
        return [(e.ids, e.type_ids) for e in batch]

    def pad(self, encoded: list[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
        """input_ids, attention_mask and token_type_ids (int64) of one batch, padded to its longest pair."""
        width = max(len(ids) for ids, _ in encoded)
        ids = np.full((len(encoded), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        types = np.zeros((len(encoded), width), dtype=np.int64)
        for i, (row, kinds) in enumerate(encoded):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
            types[i, : len(kinds)] = kinds
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so little padding is computed."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
