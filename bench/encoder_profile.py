"""Where the ONNX encoder's time goes: ONNX Runtime's own profile, summed by operator type.

    .venv/bin/python bench/encoder_profile.py [--batch 16] [--tokens 26] [--runs 50]

Runs one padded batch (``--batch`` texts of ``--tokens`` word pieces, the size of a batch
of the generated short answers of ``bench.common.load_corpus``) through the cached fp32 and
int8 files on one thread, as the grader runs batches side by side, and prints the share and
the milliseconds per run of each operator type. The int8 file's matrix products are
``MatMulIntegerToFloat``; the rest of its extra operators quantise activations per row.

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def profile(path: Path, batch: int, tokens: int, runs: int) -> tuple[float, collections.Counter]:
    """(ms per run, microseconds per run of each operator type) of one single-threaded session."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="grader-profile-")) / "ort")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(0).integers(1000, 20000, (batch, tokens + 2), dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in {i.name for i in session.get_inputs()}:
        feed["token_type_ids"] = np.zeros_like(ids)
    for _ in range(5):
        session.run(None, feed)
    started = time.perf_counter()
    for _ in range(runs):
        session.run(None, feed)
    per_run = (time.perf_counter() - started) / runs * 1000
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / (runs + 5)
    return per_run, by_op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=26, help="word pieces per text, before [CLS] and [SEP]")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from grader.encoding.embedder import SentenceTransformerEmbedder

    print(f"one batch of {args.batch} texts x {args.tokens} word pieces, one thread, {args.runs} runs")
    for precision in ("fp32", "int8"):
        path = SentenceTransformerEmbedder(backend=precision, device="cpu").onnx_path
        per_run, by_op = profile(path, args.batch, args.tokens, args.runs)
        total = sum(by_op.values())
        print(f"\n{precision}: {per_run:.1f} ms a run ({path.parent.name})")
        for op, us in by_op.most_common(args.top):
            print(f"  {op:<22} {us / total:6.1%} {us / 1000:7.2f} ms")


if __name__ == "__main__":
    main()
