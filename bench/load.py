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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a file: this tree's bench package
from bench.common import ROOT, RUBRIC, cpu_seconds, make_answers  # noqa: E402


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
