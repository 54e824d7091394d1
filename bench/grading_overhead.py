"""What the grader spends per answer besides the encoder, and how grade_pairs splits its time.

    .venv/bin/python bench/grading_overhead.py [--corpus generated] [--answers 2000] [--backend int8]
    GRADER_BLAS_THREADS=0 .venv/bin/python bench/grading_overhead.py   # numpy's BLAS left at its default

Part 1 times each stage of grading one answer on precomputed encodings, as CPU time of
the grading thread and of the whole process (best of ``--rounds``): text analysis, span
pooling, all signals, and ``score_answer`` on the question ``Grader.prepare`` returns
(signals, detectors, the result). Process CPU time above thread CPU time is other threads
working meanwhile, such as BLAS workers.
Part 2 times the encoder alone on the corpus (the most ``grade_pairs`` could reach), then
grades the corpus with ``grade_pairs`` and splits the grading thread's wall time into
waiting for the encoder (which runs the next batches on the other cores meanwhile) and
``score_answer``, timed where the engine (``grader.engine.grader``) calls it. Answers come
from ``bench.common.load_corpus``.

Record the figures on docs/performance.md with the date and this command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import load_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=("saf_en", "generated"), default="generated")
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--backend", default="int8")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import grader.engine.grader as engine_module
    from grader import text
    from grader.scoring import features
    from grader.scoring import phrases
    from grader.encoding.blas_threads import blas_threads_setting
    from grader.engine import Grader, get_embedder
    from grader.engine.grader import ENCODE_CHUNK
    from grader.scoring.policy import score_answer

    questions, pairs = load_corpus(args.corpus, args.answers)
    grader = Grader(None, embedder=get_embedder(None, "cpu", args.backend, None))
    prepared = {q: grader.prepare(q) for q in questions.values()}
    encodings = grader.encode_answers(a for _, a in pairs)
    answered = [(q, a) for q, a in pairs if a in encodings]  # blank answers are never encoded or analysed
    analyses = {a: text.analyze(a, prepared[q].language) for q, a in answered}
    stages = {
        "analyze": lambda q, a: text.analyze(a, prepared[q].language),
        "AnswerSpans": lambda q, a: phrases.AnswerSpans(analyses[a], encodings[a], prepared[q].topic),
        "answer_signals": lambda q, a: features.answer_signals(prepared[q], a, encodings[a]),
        "score_answer": lambda q, a: score_answer(grader.prepare(q), a, encodings[a], grader.combiner),
    }
    print(f"{len(pairs)} {args.corpus} answers, backend {args.backend}, BLAS threads setting "
          f"{blas_threads_setting()} (0: left alone); best of {args.rounds} rounds, us per answer")
    print(f"{'stage':<16} {'thread CPU':>11} {'process CPU':>12}")
    for name, stage in stages.items():
        best_thread = best_process = float("inf")
        for _ in range(args.rounds):
            thread, process = time.thread_time(), time.process_time()
            for q, a in answered:
                stage(q, a)
            best_thread = min(best_thread, time.thread_time() - thread)
            best_process = min(best_process, time.process_time() - process)
        print(f"{name:<16} {best_thread / len(answered) * 1e6:>11.0f} {best_process / len(answered) * 1e6:>12.0f}")

    spent = {"encode": 0.0, "grade": 0.0}

    def timed(key, fn):
        def run(*a, **kw):
            started = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - started
        return run

    def waited(stream):  # time the grader spends waiting for the next encoding
        def run(lists):
            source = stream(lists)
            while True:
                started = time.perf_counter()
                item = next(source, None)
                spent["encode"] += time.perf_counter() - started
                if item is None:
                    return
                yield item
        return run

    texts = list(dict.fromkeys(a for _, a in answered))
    chunks = [texts[k : k + ENCODE_CHUNK] for k in range(0, len(texts), ENCODE_CHUNK)]
    for _ in range(2):  # the encoder alone, in grade_pairs's chunks and one stream: the ceiling of grade_pairs
        started, cpu = time.perf_counter(), time.process_time()
        for _ in grader.embedder.iter_encode_lists(chunks):
            pass
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"\nencoder alone: {len(texts) / wall:.1f} answers/s, {cpu / len(texts) * 1e3:.2f} ms of CPU an answer")

    grader.embedder.iter_encode_lists = waited(grader.embedder.iter_encode_lists)
    engine_module.score_answer = timed("grade", score_answer)  # the name the engine calls for each answer
    for _ in range(2):  # the first round warms the encoder's shapes
        spent.update(encode=0.0, grade=0.0)
        started, cpu = time.perf_counter(), time.process_time()
        grader.grade_pairs(pairs)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = len(pairs)
    print(f"grade_pairs: {n / wall:.1f} answers/s, {cpu / n * 1e3:.2f} ms of CPU an answer, "
          f"{wall / n * 1e3:.2f} ms an answer (wall), "
          f"{cpu / wall:.2f} cores busy on average. Of each answer's wall time the grading thread spent "
          f"{spent['encode'] / n * 1e3:.2f} ms waiting for the encoder, {spent['grade'] / n * 1e3:.2f} in "
          f"score_answer and {(wall - spent['encode'] - spent['grade']) / n * 1e3:.2f} on the rest; the encoder "
          "works on the other cores meanwhile.")


if __name__ == "__main__":
    main()
