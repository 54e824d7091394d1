"""Load test of the HTTP service on loopback at 1, 8 and 32 concurrent clients.

    .venv/bin/python bench/load.py [--requests 300] [--max-seconds 30] [--url http://127.0.0.1:8000 --key K]

Starts ``grader serve`` in a subprocess (unless --url is given), sends POST /v1/grade
for distinct short answers to rubrics/rnn_lstm.yaml q5, and prints p50/p95/p99 latency,
throughput and errors per concurrency level. It then grades the same answers offline
with ``Grader.grade_many`` in batches of the server's batch size and compares
throughput at 32 clients with that. Each level is bounded in requests and seconds.

Targets on the 2-core CPU machine: p50 <= 25 ms at 1 client, p99 <= 150 ms
at 8 clients, zero errors, throughput at 32 clients >= 70% of offline batch throughput.

The load generator runs on the same cores as the server, so it prints the CPU it spent
a request. ``--client bare`` drives the server with a minimal HTTP/1.1 client over asyncio
streams (keep-alive, one connection per client) instead of httpx, which costs several
milliseconds of CPU a request at 32 clients: CPU the server then does not get.

Record the figures on docs/performance.md with the date and this command.

``--neighbour`` measures isolation instead: 8 clients send normal answers while one
"abusive neighbour" sends, in a loop, the largest requests the limits allow (an inline
question at every question limit with an answer at the answer limit, and a batch at the
item and character limits, each one new so that no cache helps). It prints the normal
clients' p50/p99 without and with the neighbour; target: p99 with it within 3x of without.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import FRAGMENTS, ROOT, RUBRIC, cpu_seconds, make_answers  # noqa: E402


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


async def run_level(url: str, key: str, answers: list[str], clients: int, max_requests: int,
                    max_seconds: float, client: str = "httpx") -> dict:
    """Drive the server with ``clients`` concurrent clients; return latencies, errors, throughput, client CPU."""
    cpu = cpu_seconds()
    run = _bare_level if client == "bare" else _httpx_level
    out = await run(url, key, answers, clients, max_requests, max_seconds)
    out["client_cpu_ms"] = (cpu_seconds() - cpu) / max(1, out["requests"]) * 1000
    return out


def _summary(clients: int, latencies: list[float], errors: dict, batch_sizes: list[int], elapsed: float) -> dict:
    return {"clients": clients, "requests": len(latencies), "seconds": elapsed, "errors": errors,
            "rps": len(latencies) / elapsed, "p50": pct(latencies, 50) * 1000, "p95": pct(latencies, 95) * 1000,
            "p99": pct(latencies, 99) * 1000, "batch": statistics.mean(batch_sizes) if batch_sizes else 0.0}


async def _bare_level(url: str, key: str, answers: list[str], clients: int, max_requests: int,
                      max_seconds: float) -> dict:
    """The same requests over raw keep-alive HTTP/1.1 connections: a load generator that costs little CPU."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    batch_sizes: list[int] = []
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + max_seconds

    async def worker():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                body = json.dumps({"rubric_id": "rnn_lstm", "question_id": "q5",
                                   "answer": answers[i % len(answers)]}).encode()
                head = (f"POST /v1/grade HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                t = time.perf_counter()
                writer.write(head + body)
                lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                await reader.readexactly(int(headers["content-length"]))
                latencies.append(time.perf_counter() - t)
                code = lines[0].split()[1]
                if code == "200":
                    batch_sizes.append(int(headers.get("x-batch-size", "1")))
                else:
                    errors[code] = errors.get(code, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return _summary(clients, latencies, errors, batch_sizes, time.perf_counter() - started)


async def _httpx_level(url: str, key: str, answers: list[str], clients: int, max_requests: int,
                       max_seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    batch_sizes: list[int] = []
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60, limits=limits) as client:
        async def worker():
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                body = {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": answers[i % len(answers)]}
                t = time.perf_counter()
                try:
                    r = await client.post("/v1/grade", json=body)
                    ok = r.status_code == 200
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    ok, code = False, type(exc).__name__
                latencies.append(time.perf_counter() - t)
                if ok:
                    batch_sizes.append(int(r.headers.get("X-Batch-Size", "1")))
                else:
                    errors[code] = errors.get(code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return _summary(clients, latencies, errors, batch_sizes, elapsed)


def offline_throughput(answers: list[str], batch_size: int, max_seconds: float) -> float:
    """Answers per second of ``Grader.grade_many`` in batches of ``batch_size`` on the same answers."""
    from grader import Grader, load_rubric

    grader = Grader(load_rubric(RUBRIC))
    grader.grade_many([("q5", a) for a in answers[:batch_size]])  # load and warm up
    done, started = 0, time.perf_counter()
    for i in range(0, len(answers), batch_size):
        grader.grade_many([("q5", a) for a in answers[i:i + batch_size]])
        done += len(answers[i:i + batch_size])
        if time.perf_counter() - started > max_seconds:
            break
    return done / (time.perf_counter() - started)


def start_server(port: int, key: str, batch_max: int) -> subprocess.Popen:
    """``grader serve`` in a subprocess, logging warnings only."""
    env = {**os.environ, "GRADER_API_KEYS": key, "GRADER_LOG_LEVEL": "warning",
           "GRADER_BATCH_MAX_SIZE": str(batch_max), "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-m", "grader", "serve", "--rubrics", str(RUBRIC.parent),
                             "--port", str(port)], cwd=ROOT, env=env)


def wait_ready(url: str, timeout: float = 300) -> None:
    """Block until GET /readyz answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {url} was not ready within {timeout:g} s")


def largest_requests(n: int, settings=None):
    """Yield (path, JSON body bytes) of the largest requests ``settings`` (default: the environment's) allow.

    In turn: an inline question with the most key phrases, alternatives and characters and an
    answer of the most characters; then a batch of the most items holding the most characters.
    Each is distinct (a counter in its texts), so the service prepares every question anew.
    """
    from grader.settings import Settings

    s = settings or Settings()
    fill = " ".join(FRAGMENTS) + " "

    def text(size: int, tag: str) -> str:
        return (f"{tag} " + fill * (size // len(fill) + 1))[:size]

    for i in range(n):
        phrases = s.max_key_phrases
        alternatives = s.max_alternatives
        budget = s.max_question_chars - 200
        per_phrase = budget // 2 // max(1, phrases * (alternatives + 1))
        key_phrases = [{"text": text(per_phrase, f"k{i}.{k}"),
                        "alternatives": [text(per_phrase, f"a{i}.{k}.{j}") for j in range(alternatives)]}
                       for k in range(phrases)]
        left = budget - per_phrase * phrases * (alternatives + 1)
        count = min(20, -(-left // s.max_answer_chars))
        references = [text(min(s.max_answer_chars, left // count), f"r{i}.{r}") for r in range(count)]
        question = {"prompt": f"Why do LSTMs remember longer than RNNs? ({i})", "max_points": 5,
                    "reference_answers": references, "key_phrases": key_phrases}
        yield "/v1/grade", json.dumps({"question": question, "answer": text(s.max_answer_chars, f"s{i}")}).encode()
        items = s.max_batch_size
        size = min(s.max_answer_chars, s.max_request_chars // items - 1)
        batch = [{"rubric_id": "rnn_lstm", "question_id": "q5", "answer": text(size, f"b{i}.{j}")}
                 for j in range(items)]
        yield "/v1/grade/batch", json.dumps({"items": batch}).encode()


def neighbour(url: str, key: str, stop: threading.Event, counts: dict) -> None:
    """Send :func:`largest_requests` one after another until ``stop`` is set (run in a thread)."""
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
        for path, body in largest_requests(10_000):
            if stop.is_set():
                return
            t = time.perf_counter()
            try:
                code = str(client.post(path, content=body).status_code)
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            counts.setdefault(path, []).append((code, time.perf_counter() - t))


def neighbour_figures(url: str, key: str, answers: list[str], requests: int, max_seconds: float,
                      client: str) -> dict:
    """The normal clients' figures at 8 clients without, then with, the abusive neighbour."""
    without = asyncio.run(run_level(url, key, answers, 8, requests, max_seconds, client))
    stop, counts = threading.Event(), {}
    thread = threading.Thread(target=neighbour, args=(url, key, stop, counts), daemon=True)
    thread.start()
    time.sleep(2.0)  # the neighbour's work fills the queue first
    try:
        with_neighbour = asyncio.run(run_level(url, key, answers[::-1], 8, requests, max_seconds, client))
    finally:
        stop.set()
        thread.join(180)
    return {"without": without, "with": with_neighbour, "neighbour": counts}


def print_neighbour(figures: dict) -> None:
    """The table of :func:`neighbour_figures` and the 3x target."""
    print(f"{'8 normal clients':<24} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}")
    for name in ("without", "with"):
        r = figures[name]
        print(f"{name + ' the neighbour':<24} {r['requests']:>8} {sum(r['errors'].values()):>6} {r['p50']:>8.1f} "
              f"{r['p99']:>8.1f} {r['rps']:>7.1f}" + (f"  errors: {r['errors']}" if r["errors"] else ""))
    for path, done in figures["neighbour"].items():
        codes: dict[str, int] = {}
        for code, _ in done:
            codes[code] = codes.get(code, 0) + 1
        print(f"neighbour {path}: {len(done)} requests, {statistics.mean(t for _, t in done):.2f} s each, "
              f"status {codes}")
    ratio = figures["with"]["p99"] / figures["without"]["p99"]
    print(f"\np99 with / without the neighbour: {ratio:.2f}  ({'PASS' if ratio <= 3 else 'MISS'}, target <= 3)")


def main(argv: list[str] | None = None) -> int:
    """Run the load test and print the figures next to the targets."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="an already running server (default: start one)")
    p.add_argument("--key", default="bench-key", help="API key for --url")
    p.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    p.add_argument("--max-seconds", type=float, default=30, help="time bound per concurrency level")
    p.add_argument("--clients", default="1,8,32", help="concurrency levels")
    p.add_argument("--client", choices=("httpx", "bare"), default="httpx",
                   help="load generator: httpx, or a minimal HTTP/1.1 client that leaves the server more CPU")
    p.add_argument("--batch-max", type=int, default=32, help="GRADER_BATCH_MAX_SIZE of the started server")
    p.add_argument("--neighbour", action="store_true",
                   help="8 normal clients without and with one client sending the largest requests allowed")
    args = p.parse_args(argv)

    answers = make_answers(args.requests)
    proc = None
    url = args.url
    if url is None:
        from grader.api.server import free_port

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(port, args.key, args.batch_max)
    try:
        wait_ready(url)
        asyncio.run(run_level(url, args.key, make_answers(20, seed=99), 4, 40, 30, args.client))  # warm-up
        if args.neighbour:
            print_neighbour(neighbour_figures(url, args.key, answers, args.requests, args.max_seconds, args.client))
            return 0
        rows = [asyncio.run(run_level(url, args.key, answers, int(c), args.requests, args.max_seconds, args.client))
                for c in args.clients.split(",")]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    offline = offline_throughput(answers, args.batch_max, args.max_seconds)

    print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'req/s':>7} {'mean batch':>10} {'client CPU ms/req':>17}")
    for r in rows:
        print(f"{r['clients']:>7} {r['requests']:>8} {sum(r['errors'].values()):>6} {r['p50']:>8.1f} "
              f"{r['p95']:>8.1f} {r['p99']:>8.1f} {r['rps']:>7.1f} {r['batch']:>10.1f} {r['client_cpu_ms']:>17.2f}"
              + (f"  errors: {r['errors']}" if r["errors"] else ""))
    print(f"load generator: {args.client}; offline grade_many, batches of {args.batch_max}: {offline:.1f} answers/s")
    by = {r["clients"]: r for r in rows}
    checks = []
    if 1 in by:
        checks.append(("p50 at 1 client <= 25 ms", by[1]["p50"], 25.0, by[1]["p50"] <= 25))
    if 8 in by:
        checks.append(("p99 at 8 clients <= 150 ms", by[8]["p99"], 150.0, by[8]["p99"] <= 150))
    errors = sum(sum(r["errors"].values()) for r in rows)
    checks.append(("zero errors", errors, 0, errors == 0))
    if 32 in by:
        share = by[32]["rps"] / offline * 100
        checks.append(("32-client throughput >= 70% of offline", share, 70.0, share >= 70))
    print("\ntargets:")
    for name, value, target, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {name}: {value:.1f} (target {target:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
