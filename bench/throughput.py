"""Grading throughput against the raw encoder, cold start, peak memory and scaling.

    .venv/bin/python bench/throughput.py                 # default model, fp32 and int8 (the CPU default), 3 runs
    .venv/bin/python bench/throughput.py --backends fp32,int8,torch  # also plain torch, all against raw fp32
    .venv/bin/python bench/throughput.py --scaling-only --backends int8 --scaling 1000,10000,100000  # grade_csv
    .venv/bin/python bench/throughput.py --scorer models/NAME/ --scorer-only  # a fine-tuned scorer, int8 and fp32

Each measurement runs in a fresh subprocess so timings and peak RSS are not
polluted by earlier work. Loading the model and preparing each question (encoding
its reference and key phrases, once per question and cached) happen before the
clock starts, as loading does for the raw encoder; the clock then covers what
each answer costs. The ratio is the median grader rate over the median raw rate;
"run ratios" gives the lowest and highest of each run's grader against the raw
encoder timed just before it, which shows how much the machine drifts. The raw encoder is plain ``SentenceTransformer.encode``
on the same answers, which is what a user compares against. The corpora are those of
``bench.common.load_corpus``.

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import ROOT  # noqa: E402

WORKER = r"""
import json, sys, time
start = time.perf_counter()
mode, corpus, n, backend, device, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]) or None
workers = sys.argv[7] if sys.argv[7] == "auto" else int(sys.argv[7])
sys.path.insert(0, {root!r})
from bench.common import load_corpus, peak_rss_mb
questions, pairs = load_corpus(corpus, n)
answers = [a for _, a in pairs]
out = {{}}
if mode == "raw":
    from sentence_transformers import SentenceTransformer
    from grader.encoding.weights import resolve_model
    model = SentenceTransformer(str(resolve_model("minilm")[0]), device=None if device == "auto" else device)
    model.encode(answers[:64], batch_size=batch or 32)
    t = time.perf_counter()
    model.encode(answers, batch_size=batch or 32)
    out["seconds"] = time.perf_counter() - t
elif mode.startswith("scorer-"):
    from grader.finetune import CrossEncoderScorer, question_text
    scorer = CrossEncoderScorer(sys.argv[8], mode.split("-", 1)[1])
    firsts = {{}}
    texts = [firsts.setdefault(id(q), question_text(q)) for q, _ in pairs]
    scorer.predict(texts[:64], answers[:64])
    t = time.perf_counter()
    scorer.predict(texts, answers)
    out["seconds"] = time.perf_counter() - t
elif mode == "csv":
    import csv, tempfile
    from pathlib import Path
    from grader.files.batch import grade_csv
    from grader.engine import Grader, get_embedder
    folder = Path(tempfile.mkdtemp(prefix="grader-scaling-"))
    with open(folder / "in.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student_id", "question_id", "answer"])
        w.writerows((f"s{{i}}", "q5", a) for i, a in enumerate(answers))
    del questions, pairs
    from grader.rubric import load_rubric
    rubric = load_rubric({root!r} + "/rubrics/rnn_lstm.yaml")
    grader = Grader(rubric, embedder=get_embedder(None, None if device == "auto" else device, backend, batch),
                    workers=workers)
    grading = [0.0]  # seconds inside the grading calls; the rest is reading, writing and syncing the CSV
    grade_many = grader.grade_many
    def timed_grade_many(items):
        started = time.perf_counter()
        try:
            return grade_many(items)
        finally:
            grading[0] += time.perf_counter() - started
    grader.grade_many = timed_grade_many
    t = time.perf_counter()
    result = grade_csv(folder / "in.csv", rubric, folder / "out.csv", grader=grader,
                       progress=False, log=lambda m: None)
    out["seconds"] = time.perf_counter() - t
    out["grading_s"] = grading[0]
    out["rows_out"] = sum(1 for _ in open(folder / "out.csv", encoding="utf-8-sig")) - 1
    import shutil; shutil.rmtree(folder)
    out["answers"] = len(answers)
else:
    from grader.engine import Grader, get_embedder
    grader = Grader(None, embedder=get_embedder(None, None if device == "auto" else device, backend, batch),
                    workers=workers)
    first = grader.grade_pairs(pairs[:1])
    out["first_grade_s"] = time.perf_counter() - start
    grader.grade_pairs(pairs[:300])  # also starts the grading processes, where there are any
    for q in questions.values():  # once per question and cached, like loading the model: not per answer
        grader.prepare(q)
    t = time.perf_counter()
    grader.grade_pairs(pairs)
    out["seconds"] = time.perf_counter() - t
out.setdefault("answers", len(answers))
out["peak_rss_mb"] = peak_rss_mb()
print("RESULT " + json.dumps(out))
"""


def run_worker(mode: str, corpus: str, n: int, backend: str, device: str, batch: int, workers: str = "auto",
               scorer: str = "") -> dict:
    """Run one measurement in a fresh interpreter and return its figures (``batch`` 0: the encoder's default)."""
    code = WORKER.format(root=str(ROOT))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, mode, corpus, str(n), backend, device, str(batch), workers,
                           scorer],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"worker failed ({mode} {corpus}):\n{proc.stderr[-3000:]}")
    out = json.loads(line[7:])
    out["wall_s"] = wall
    return out


def cold_start(backend: str, device: str) -> float:
    """Seconds from launching `grader score` to its printed grade."""
    started = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "grader"), "score", "--rubric", "rubrics/rnn_lstm.yaml",
                           "--question", "q5", "--backend", backend, "--no-signals",
                           "LSTMs keep a cell state that is updated additively through gates."]
                          + ([] if device == "auto" else ["--device", device]), capture_output=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.decode()[-2000:])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="fp32,int8", help="comma-separated: fp32, int8, torch, fp16 (CUDA), auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="texts per encoder call (default: the encoder's own, 32 for the raw encoder)")
    parser.add_argument("--workers", default="auto", help="grading processes (Grader(workers=...)); auto: none on "
                        "a CPU, every core but one beside a GPU")
    parser.add_argument("--generated", type=int, default=10_000, help="size of the generated corpus")
    parser.add_argument("--scaling", default="", help="comma-separated corpus sizes for the scaling table "
                        "(graded with the first of --backends)")
    parser.add_argument("--scaling-only", action="store_true", help="print only the scaling table")
    parser.add_argument("--scorer", default="", help="a fine-tuned scorer folder (grader train --finetune): also "
                        "time its (question + model answer, answer) pairs at int8 and fp32 against raw fp32 encode")
    parser.add_argument("--scorer-only", action="store_true", help="print only the scorer table")
    args = parser.parse_args()
    if args.scorer_only:
        scorer_table(args)
        return

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.scaling_only:
        args.runs = 0
    print(f"backends={','.join(backends)} device={args.device} batch={args.batch_size or 'default'} runs={args.runs} "
          "(median)")
    if args.runs:
        print(f"{'corpus':<10} {'backend':<8} {'answers':>8} {'grader/s':>9} {'raw fp32/s':>11} {'ratio':>6} "
              f"{'run ratios':>11} {'peak RSS MB':>12}")
    for corpus, n in (("saf_en", 0), ("generated", args.generated)) if args.runs else ():
        graded = {b: [] for b in backends}
        rss = {b: [] for b in backends}
        raw = []
        for _ in range(args.runs):
            r = run_worker("raw", corpus, n, "fp32", args.device, args.batch_size)
            raw.append(r["answers"] / r["seconds"])
            for b in backends:
                g = run_worker("grade", corpus, n, b, args.device, args.batch_size, args.workers)
                graded[b].append(g["answers"] / g["seconds"])
                rss[b].append(g["peak_rss_mb"])
        rm = statistics.median(raw)
        for b in backends:
            gm = statistics.median(graded[b])
            ratios = [g / r for g, r in zip(graded[b], raw)]  # each run's grader against the raw run just before it
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            print(f"{corpus:<10} {b:<8} {r['answers']:>8} {gm:>9.1f} {rm:>11.1f} {gm / rm:>6.2f} {spread:>11} "
                  f"{statistics.median(rss[b]):>12.0f}")
    for b in backends if args.runs else ():
        starts = [cold_start(b, args.device) for _ in range(args.runs)]
        print(f"cold start to first grade (`grader score --backend {b}`, median of {args.runs}): "
              f"{statistics.median(starts):.2f} s")
    if args.scaling:
        # One long-format CSV of n distinct q5 answers, graded by grade_csv (the product's batch path, streaming).
        print(f"\nscaling: one CSV of N distinct answers graded with grade_csv, backend {backends[0]}")
        print(f"{'answers':>8} {'rows out':>9} {'seconds':>8} {'grading s':>10} {'answers/s':>10} {'peak RSS MB':>12}")
        for n in [int(x) for x in args.scaling.split(",")]:
            g = run_worker("csv", "generated", n, backends[0], args.device, args.batch_size, args.workers)
            print(f"{n:>8} {g['rows_out']:>9} {g['seconds']:>8.1f} {g['grading_s']:>10.1f} {n / g['seconds']:>10.1f} "
                  f"{g['peak_rss_mb']:>12.0f}")
    if args.scorer:
        scorer_table(args)


def scorer_table(args) -> None:
    """The fine-tuned scorer's pairs per second at int8 and fp32, against raw fp32 encode of the answers alone."""
    if not args.scorer:
        raise SystemExit("--scorer-only needs --scorer FOLDER")
    runs = max(1, args.runs)
    print(f"\nfine-tuned scorer {args.scorer}: (question + model answer, answer) pairs per second, median of {runs}")
    print(f"{'corpus':<10} {'precision':<9} {'answers':>8} {'scorer/s':>9} {'raw fp32/s':>11} {'ratio':>6}")
    for corpus, n in (("saf_en", 0), ("generated", args.generated)):
        raw, rates = [], {"int8": [], "fp32": []}
        for _ in range(runs):
            r = run_worker("raw", corpus, n, "fp32", args.device, args.batch_size)
            raw.append(r["answers"] / r["seconds"])
            for precision in rates:
                g = run_worker(f"scorer-{precision}", corpus, n, "fp32", args.device, args.batch_size,
                               scorer=args.scorer)
                rates[precision].append(g["answers"] / g["seconds"])
        rm = statistics.median(raw)
        for precision, values in rates.items():
            gm = statistics.median(values)
            print(f"{corpus:<10} {precision:<9} {r['answers']:>8} {gm:>9.1f} {rm:>11.1f} {gm / rm:>6.2f}")


if __name__ == "__main__":
    main()
