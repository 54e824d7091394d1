"""The GPU side of the grader in one short run: device choice, fp16 against fp32, throughput, largest batch.

    .venv/bin/python bench/gpu.py [--answers 20000] [--workers auto]
    .venv/bin/python bench/gpu.py --device cpu --backends torch,fp32 --answers 600 --workers 2  # checks the script

Exits 2 at once on a machine without CUDA. Otherwise it prints, in a few minutes on one card:

1. the device and batch size the default grader picks (``Grader()`` with no options);
2. fp16 against fp32 on SAF-en: the cosine of the sentence vectors and how many grades
   (points and labels) agree, which says whether fp16 is safe;
3. answers/s grading ``--answers`` generated short answers (``bench.common.load_corpus``)
   with fp16 grading in the calling thread, with fp16 and fp32 and the grading processes of
   ``--workers`` beside them (auto: every core but one), and of plain
   ``SentenceTransformer.encode`` on the GPU for comparison;
4. the largest batch of 256-token texts one fp16 forward pass fits, found by doubling and
   then bisection, with the memory it peaked at.

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import load_corpus  # noqa: E402


def largest_fitting(fits, start: int = 256, limit: int = 1 << 17) -> int:
    """The largest n <= ``limit`` with ``fits(n)``, for a ``fits`` true up to some size and false above it.

    Doubles from ``start`` while it fits, then bisects between the last size that fit
    (0 when ``start`` did not) and the first that did not.
    """
    low, n = 0, start
    while n <= limit and fits(n):
        low, n = n, n * 2
    if n > limit:
        return low
    high = n
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a quick check of this script")
    parser.add_argument("--backends", default="fp16,fp32", help="the two backends compared (default fp16,fp32)")
    args = parser.parse_args()
    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device: bench/gpu.py times the GPU path only (--device cpu checks the script)", file=sys.stderr)
        return 2
    from grader.engine import Grader, get_embedder
    from grader.encoding.weights import resolve_model
    from grader.engine.workers import auto_workers

    def synchronize():
        if cuda:
            torch.cuda.synchronize()

    workers = args.workers if args.workers == "auto" else int(args.workers)
    first, second = args.backends.split(",")
    default = Grader(None).embedder.load()
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'cpu'}; the default grader picks {default.device}, "
          f"backend {default.backend}, batch {default.batch_size}, {auto_workers(default.device)} grading "
          "processes for large calls")

    _, saf = load_corpus("saf_en", 0)
    graders = {b: Grader(None, embedder=get_embedder(None, args.device, b, None), workers=workers)
               for b in (first, second)}
    texts = [a for _, a in saf]
    vectors = {b: g.embedder.encode(texts) for b, g in graders.items()}
    cosine = (vectors[first] * vectors[second]).sum(axis=1)
    grades = {b: g.grade_pairs(saf) for b, g in graders.items()}
    same_points = sum(a.points == b.points for a, b in zip(grades[first], grades[second]))
    same_label = sum(a.label == b.label for a, b in zip(grades[first], grades[second]))
    print(f"{first} vs {second} on {len(saf)} SAF-en answers: cosine mean {cosine.mean():.5f}, "
          f"min {cosine.min():.5f}; same points {same_points}, same label {same_label}")

    _, pairs = load_corpus("generated", args.answers)
    answers = [a for _, a in pairs]
    warm = pairs[: min(2000, len(pairs))]
    alone = Grader(None, embedder=graders[first].embedder, workers=0)
    alone.grade_pairs(warm)
    synchronize()
    started = time.perf_counter()
    alone.grade_pairs(pairs)
    print(f"grader {first}, grading in the calling thread (workers=0): "
          f"{len(pairs) / (time.perf_counter() - started):.0f} answers/s")
    for backend, grader in graders.items():
        grader.grade_pairs(warm)  # warm-up; starts the grading processes
        synchronize()
        started = time.perf_counter()
        grader.grade_pairs(pairs)
        seconds = time.perf_counter() - started
        print(f"grader {backend}: {len(pairs) / seconds:.0f} answers/s ({len(pairs)} short answers, "
              f"batch {grader.embedder.batch_size}, {grader.grading_processes} grading processes)")
        grader.close()
    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(str(resolve_model("minilm")[0]), device=args.device)
    if cuda:
        raw.half()
    raw.encode([a for _, a in warm], batch_size=256)
    synchronize()
    started = time.perf_counter()
    raw.encode(answers, batch_size=256)
    print(f"plain SentenceTransformer.encode{' fp16' if cuda else ''}, batch 256: "
          f"{len(answers) / (time.perf_counter() - started):.0f} answers/s")
    if not cuda:
        return 0

    embedder = graders[first].embedder

    def fits(n: int) -> bool:  # one forward pass of n texts of the longest length, kept on the card
        torch.cuda.empty_cache()
        ids = torch.full((n, embedder.max_length), 1000, dtype=torch.long, device=embedder.device)
        mask = torch.ones_like(ids)
        try:
            embedder.forward_batch(ids, mask)
            torch.cuda.synchronize()
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            del ids, mask

    torch.cuda.reset_peak_memory_stats()
    largest = largest_fitting(fits)
    print(f"largest {first} batch of {embedder.max_length}-token texts in one forward pass: {largest} "
          f"(peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB of "
          f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
