"""Encoder-only speed and agreement: ONNX Runtime int8 against the torch fp32 encoder.

    .venv/bin/python bench/int8_encoder.py [--answers 300] [--rounds 5]

Both encoders run the same padded batches (SAF-en answers, length-sorted, 32 per batch
within the embedder's token budget), alternating round by round so that load from other
processes hits both alike; answers/s is the median over rounds. The cosine of each
answer's int8 sentence vector to its fp32 one is printed over all answers used.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAF_EN = ROOT.parent / "shared" / "data" / "saf_en" / "train.csv"


def padded_batches(embedder, texts: list[str], batch_size: int) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """(members, input_ids, attention_mask) per batch, as the embedder forms them (one window per text)."""
    from grader.embedder import _batches

    tok = embedder._tokenizer(texts, add_special_tokens=False)["input_ids"]
    window = embedder._max_len - len(embedder._prefix) - len(embedder._suffix)
    ids = [embedder._prefix + t[:window] + embedder._suffix for t in tok]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = []
    for members in _batches(order, [len(ids[i]) for i in order], batch_size):
        width = max(len(ids[i]) for i in members)
        input_ids = np.zeros((len(members), width), np.int64)
        mask = np.zeros_like(input_ids)
        for r, i in enumerate(members):
            input_ids[r, : len(ids[i])] = ids[i]
            mask[r, : len(ids[i])] = 1
        out.append((members, input_ids, mask))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=300, help="SAF-en answers sampled (0: all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from grader.corpus import read_corpus
    from grader.embedder import SentenceTransformerEmbedder

    answers = [r.answer for r in read_corpus(SAF_EN)]
    if args.answers:
        answers = random.Random(0).sample(answers, min(args.answers, len(answers)))
    fp32 = SentenceTransformerEmbedder(backend="fp32", device="cpu", batch_size=args.batch_size).load()
    int8 = SentenceTransformerEmbedder(backend="int8", device="cpu", batch_size=args.batch_size).load()
    batches = padded_batches(fp32, answers, args.batch_size)
    dim = fp32.dimension

    def run_fp32() -> np.ndarray:
        out = np.zeros((len(answers), dim), np.float32)
        with torch.inference_mode():
            for members, ids, mask in batches:
                ids_t = torch.from_numpy(ids)
                features = {"input_ids": ids_t, "attention_mask": torch.from_numpy(mask),
                            "token_type_ids": torch.zeros_like(ids_t)}
                out[members] = fp32._model(features)["sentence_embedding"].numpy()
        return out

    def run_int8() -> np.ndarray:
        out = np.zeros((len(answers), dim), np.float32)
        for members, ids, mask in batches:
            out[members] = int8._model.run(ids, mask)[0]
        return out

    runs = {"torch fp32": run_fp32, "ORT int8": run_int8}
    speed = {k: [] for k in runs}
    vectors = {k: f() for k, f in runs.items()}  # warm-up
    for _ in range(args.rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            speed[name].append(len(answers) / (time.perf_counter() - started))
    cos = (vectors["ORT int8"] * vectors["torch fp32"]).sum(1)
    tokens = sum(int(m.sum()) for _, _, m in batches)
    print(f"{len(answers)} SAF-en answers, {tokens / len(answers):.0f} tokens each on average, "
          f"{len(batches)} batches, threads={torch.get_num_threads()}, median of {args.rounds} rounds")
    for name in runs:
        print(f"{name:<11} {statistics.median(speed[name]):7.1f} answers/s  (rounds: "
              f"{' '.join(f'{s:.1f}' for s in speed[name])})")
    ratio = statistics.median(speed["ORT int8"]) / statistics.median(speed["torch fp32"])
    print(f"int8 / fp32: {ratio:.2f}x")
    print(f"cosine int8 vs fp32 sentence vectors: mean {cos.mean():.4f}, min {cos.min():.4f}, "
          f"5th percentile {np.percentile(cos, 5):.4f}")


if __name__ == "__main__":
    main()
