"""Encoder-only speed and agreement: the CPU encoders against plain torch fp32.

    .venv/bin/python bench/int8_encoder.py [--answers 300] [--rounds 5] [--corpus generated]

Each encoder (plain torch fp32, fp32 on ONNX Runtime, int8 on ONNX Runtime) encodes the
same answers (SAF-en, or with ``--corpus generated`` the short answers of
``bench.common.load_corpus``) through ``encode_tokens``, as the grader runs it: length-sorted
token-budget batches, several side by side on ONNX Runtime.
Encoders alternate round by round so that load from other processes hits all alike;
answers/s is the median over rounds. The cosine of each answer's sentence vector to its
torch fp32 one is printed over all answers used.

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import SAF_EN, load_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=300, help="answers sampled (0: all SAF-en answers)")
    parser.add_argument("--corpus", choices=("saf_en", "generated"), default="saf_en")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from grader.evaluation.corpus import read_corpus
    from grader.encoding.embedder import SentenceTransformerEmbedder

    if args.corpus == "generated":
        answers = [a for _, a in load_corpus("generated", args.answers or 10_000)[1]]
    else:
        answers = [r.answer for r in read_corpus(SAF_EN)]
        if args.answers:
            answers = random.Random(0).sample(answers, min(args.answers, len(answers)))
    encoders = {name: SentenceTransformerEmbedder(backend=backend, device="cpu").load()
                for name, backend in (("torch fp32", "torch"), ("ORT fp32", "fp32"), ("ORT int8", "int8"))}
    speed = {k: [] for k in encoders}
    vectors = {k: e.encode(answers) for k, e in encoders.items()}  # warm-up
    for _ in range(args.rounds):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(answers)
            speed[name].append(len(answers) / (time.perf_counter() - started))
    tokens = sum(len(t) for t in encoders["ORT fp32"].tokenizer(answers, add_special_tokens=False)["input_ids"])
    print(f"{len(answers)} {args.corpus} answers, {tokens / len(answers):.0f} tokens each on average, "
          f"median of {args.rounds} rounds")
    base = statistics.median(speed["torch fp32"])
    for name in encoders:
        cos = (vectors[name] * vectors["torch fp32"]).sum(1)
        print(f"{name:<11} {statistics.median(speed[name]):7.1f} answers/s  {statistics.median(speed[name]) / base:.2f}x"
              f"  cosine to torch fp32: mean {cos.mean():.4f}, min {cos.min():.4f}  (rounds: "
              f"{' '.join(f'{s:.1f}' for s in speed[name])})")


if __name__ == "__main__":
    main()
