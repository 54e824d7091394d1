"""Options shared by the commands that grade."""

from __future__ import annotations

import argparse


def workers_option(value: str) -> int | str:
    """``--workers``: 'auto' or a whole number >= 0."""
    if value == "auto":
        return value
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a whole number >= 0. Got '{value}'.")
    return count


def add_model_options(parser: argparse.ArgumentParser, combiner: bool = True, workers: bool = False) -> None:
    """--model, --device, --backend and (optionally) --combiner and --workers."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None,
                       help="embedding model: 'minilm' (default), 'mpnet', or a local sentence-transformers folder")
    group.add_argument("--device", default=None, help="'cpu', 'cuda' or 'cuda:N' (default: CUDA when present)")
    group.add_argument("--backend", default="auto", choices=["auto", "fp32", "fp16", "int8", "torch"],
                       help="encoder precision and runtime (default: fp16 on CUDA; on a CPU int8 on ONNX Runtime "
                            "for minilm, fp32 for other models; 'torch': fp32 in plain torch)")
    if workers:
        group.add_argument("--workers", type=workers_option, default="auto",
                           help="processes that grade encoded answers (default: auto, none on a CPU, every core but "
                                "one beside a GPU, where one core of grading would hold the encoder back)")
    if combiner:
        group.add_argument("--combiner", default=None,
                           help="combiner JSON from `grader train`, or a scorer folder from `grader train --finetune` "
                                "(its files are checked against its manifest; default: the combiner shipped with grader)")


def make_grader(args, rubric=None):
    """A Grader built from the shared model options."""
    from grader.engine import Grader, get_embedder

    embedder = get_embedder(args.model, args.device, args.backend)
    return Grader(rubric, embedder=embedder, combiner=getattr(args, "combiner", None),
                  workers=getattr(args, "workers", "auto"))


def add_finetune_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--finetune, --epochs and --max-length: a fine-tuned cross-encoder stacked under the combiner."""
    group = parser.add_argument_group("fine-tuned scorer")
    group.add_argument("--finetune", action="store_true",
                       help=f"{what}; the base model is --model (minilm or mpnet)")
    group.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: 2)")
    group.add_argument("--max-length", type=int, default=None,
                       help="tokens of question, model answer and answer read together (default: 128)")


def finetune_config(args):
    """The FinetuneConfig the options ask for, or None without --finetune."""
    from grader.errors import ConfigError

    if not args.finetune:
        if args.epochs is not None or args.max_length is not None:
            raise ConfigError("--epochs and --max-length apply with --finetune only", field="finetune")
        return None
    from grader.finetune.train import FinetuneConfig

    config = FinetuneConfig(model=args.model or "minilm", seed=args.seed, device=args.device)
    if args.epochs is not None:
        config.epochs = args.epochs
    if args.max_length is not None:
        config.max_length = args.max_length
    return config.check()
