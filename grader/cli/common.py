"""Options shared by the commands that grade."""

from __future__ import annotations

import argparse


def add_model_options(parser: argparse.ArgumentParser, combiner: bool = True) -> None:
    """--model, --device, --backend and (optionally) --combiner."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None,
                       help="embedding model: 'minilm' (default), 'mpnet', or a local sentence-transformers folder")
    group.add_argument("--device", default=None, help="'cpu', 'cuda' or 'cuda:N' (default: CUDA when present)")
    group.add_argument("--backend", default="auto", choices=["auto", "fp32", "fp16", "int8", "torch"],
                       help="encoder precision and runtime (default: fp16 on CUDA; on a CPU int8 on ONNX Runtime "
                            "for minilm, fp32 for other models; 'torch': fp32 in plain torch)")
    if combiner:
        group.add_argument("--combiner", default=None, help="combiner JSON from `grader train` (default: models/default.json)")


def make_grader(args, rubric=None):
    """A Grader built from the shared model options."""
    from grader.engine import Grader, get_embedder

    embedder = get_embedder(args.model, args.device, args.backend)
    return Grader(rubric, embedder=embedder, combiner=getattr(args, "combiner", None))
