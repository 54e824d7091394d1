"""Isolation of requests in the HTTP service (issue 22): bounded work, fair batches, auth before the body,
slow and vanishing clients, caches bounded by bytes, per-item batch errors and error bodies that echo little."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import httpx
import pytest

from tests.conftest import RUBRIC
from tests.test_api_service import assert_error, wait_ready

KEY = "isolation-key-0123"
AUTH = {"X-API-Key": KEY}
WORDS = ("gradient vanish cell state gate forget memory recurrent weight matrix multiply additive update "
         "long term dependency sequence hidden step error signal").split()


def _settings(**kw):
    from grader.settings import Settings

    base = dict(api_keys=KEY, rubrics_dir=RUBRIC.parent, max_answer_chars=2_000, max_body_bytes=1_000_000,
                max_batch_size=50, max_question_chars=60_000, max_key_phrases=5, max_alternatives=3,
                max_request_chars=100_000, body_timeout_s=0.5, batch_max_chars=2_000)
    return Settings(**{**base, **kw})


def _serve(app):
    from grader.api.server import ServerThread

    return ServerThread(app)


@pytest.fixture(scope="module")
def server(embedder):
    from grader.api import create_app

    with _serve(create_app(_settings(), loader=lambda: embedder)) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            assert wait_ready(c).status_code == 200
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as c:
        yield c


def _sentences(chars: int, seed: int) -> str:
    """Text of about ``chars`` characters in 12-word sentences; ``seed`` makes it distinct."""
    import random

    rng = random.Random(seed)
    out, size = [], 0
    while size < chars:
        s = " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."
        out.append(s)
        size += len(s) + 1
    return " ".join(out)[:chars]


def _big_question(seed: int, references: int = 20, chars: int = 1_990) -> dict:
    """An inline question inside the fixture's limits that takes long to prepare (many reference sentences)."""
    return {"prompt": f"Why do gradients vanish? ({seed})", "max_points": 2,
            "reference_answers": [_sentences(chars, seed * 100 + i) for i in range(references)]}


def _counter(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- 1a. work is bounded before it starts ---------------------------------------------------
def _kp(i: int, alternatives: int = 0) -> dict:
    return {"text": f"concept number {i}", "alternatives": [f"phrasing {i}.{j}" for j in range(alternatives)]}


def _too_many_chars() -> dict:
    """An inline question inside every schema bound but over the fixture's 60,000 characters in all."""
    return {"prompt": "p " * 5_000, "reference_answers": ["r " * 1_000] * 20,
            "key_phrases": [{"text": f"concept {i}", "hint": "h " * 1_000} for i in range(5)]}


@pytest.mark.parametrize("question, field, setting", [
    (_too_many_chars(), "question", "GRADER_MAX_QUESTION_CHARS"),
    ({"reference_answers": ["r " * 1_001]}, "question.reference_answers[0]", "GRADER_MAX_ANSWER_CHARS"),
    ({"key_phrases": [_kp(0, 4)]}, "question.key_phrases[0].alternatives", "GRADER_MAX_ALTERNATIVES"),
    ({"key_phrases": [_kp(i) for i in range(6)]}, "question.key_phrases", "GRADER_MAX_KEY_PHRASES"),
    ({"key_phrases": [_kp(0)], "misconceptions": [{"text": f"wrong {i}"} for i in range(6)]},
     "question.misconceptions", "GRADER_MAX_KEY_PHRASES"),
    ({"key_phrases": [_kp(0)], "misconceptions": [{"text": "wrong", "alternatives": ["x", "y", "z", "w"]}]},
     "question.misconceptions[0].alternatives", "GRADER_MAX_ALTERNATIVES"),
])
def test_inline_question_over_a_limit_is_refused_before_any_work(server, client, monkeypatch, question, field,
                                                                  setting):
    service = server.server.config.app.state.service
    calls = []
    monkeypatch.setattr(service.batcher, "run_batch", lambda items: calls.append(items))  # model work: a failure
    r = client.post("/v1/grade", json={"question": question, "answer": "Gradients vanish."})
    err = assert_error(r, 422, "limit_exceeded", field)
    assert setting in err["message"]
    assert calls == []


def test_request_over_the_character_budget_is_413_before_any_work(server, client, monkeypatch):
    items = [{"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "w " * 1_000} for _ in range(50)]
    r = client.post("/v1/grade/batch", json={"items": items})  # 50 x 2,000 = 100,000 characters: allowed
    assert r.status_code == 200 and r.json()["graded"] == 50
    service = server.server.config.app.state.service
    calls = []
    monkeypatch.setattr(service.batcher, "run_batch", lambda items: calls.append(items))
    items[-1] = {"question": {"reference_answers": ["r " * 1_000]}, "answer": "x"}  # one character more
    r = client.post("/v1/grade/batch", json={"items": items})
    err = assert_error(r, 413, "payload_too_large", "items")
    assert "GRADER_MAX_REQUEST_CHARS" in err["message"] and "100000" in err["message"]


def test_inline_questions_at_the_limits_are_graded(client):
    question = {"prompt": "Why do gradients vanish in RNNs?", "max_points": 2,
                "reference_answers": ["The same weight matrix multiplies the gradient at every step."],
                "key_phrases": [{**_kp(i, 3), "text": f"the same weight matrix {i}"} for i in range(5)]}
    r = client.post("/v1/grade", json={"question": question, "answer": "The same weight matrix is multiplied."})
    assert r.status_code == 200, r.text
    assert 0 <= r.json()["points"] <= 2


# -- 1b. a short request waits for at most one small batch ----------------------------------
# The model's work is slowed by a fixed time per character, so that the long requests are long on any machine.
MS_PER_100_CHARS = 1.0


def _slow(chars: int) -> None:
    time.sleep(chars / 100 * MS_PER_100_CHARS / 1000)


def _slow_rubric_grading(monkeypatch, service) -> None:
    grader = service.graders["rnn_lstm"]
    real = grader.grade_pairs

    def grade_pairs(pairs):
        _slow(sum(len(a or "") for _, a in pairs))
        return real(pairs)

    monkeypatch.setattr(grader, "grade_pairs", grade_pairs)


def _slow_inline_encoder(monkeypatch, service) -> list[int]:
    """Slow down the inline grader's encoder; the list returned grows by the characters of each call."""
    seen: list[int] = []
    embedder = service.inline.embedder
    inner = getattr(embedder, "embedder", embedder)  # the service may wrap the shared encoder
    real = inner.encode

    def encode(texts):
        chars = sum(len(t) for t in texts)
        seen.append(chars)
        _slow(chars)
        return real(texts)

    monkeypatch.setattr(inner, "encode", encode)
    return seen


async def _long_and_short(url: str, long_body: dict, long_path: str, shorts: int = 4):
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=AUTH) as c:
        started = time.perf_counter()
        long_task = asyncio.create_task(c.post(long_path, json=long_body))
        await asyncio.sleep(0.2)  # the long request is being worked on
        short_times = []
        for _ in range(shorts):
            t = time.perf_counter()
            r = await c.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"})
            assert r.status_code == 200 and r.json()["points"] == 1.0
            short_times.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)
        long_response = await long_task
        return long_response, time.perf_counter() - started, short_times


def test_a_short_request_does_not_wait_behind_a_long_batch(server, monkeypatch):
    _slow_rubric_grading(monkeypatch, server.server.config.app.state.service)
    items = [{"rubric_id": "rnn_lstm", "question_id": "q5", "answer": _sentences(1_950, i)} for i in range(50)]
    r, long_s, shorts = asyncio.run(_long_and_short(server.url, {"items": items}, "/v1/grade/batch"))
    assert r.status_code == 200 and r.json()["graded"] == 50
    assert long_s > 1.0, "the long request must be long for this test to mean anything"
    # Before: the short requests queued behind the batch's 32-answer model calls.
    assert max(shorts) < 0.3 * long_s, (shorts, long_s)


def test_a_short_request_does_not_wait_behind_an_inline_question_being_prepared(server, monkeypatch):
    _slow_inline_encoder(monkeypatch, server.server.config.app.state.service)
    body = {"question": _big_question(seed=1), "answer": "Gradients vanish because the weights multiply."}
    r, long_s, shorts = asyncio.run(_long_and_short(server.url, body, "/v1/grade"))
    assert r.status_code == 200, r.text
    assert long_s > 1.0, "the long request must be long for this test to mean anything"
    assert max(shorts) < 0.3 * long_s, (shorts, long_s)


# -- 1c. a timed-out request's remaining work is dropped ------------------------------------
@pytest.fixture(scope="module")
def impatient_server(embedder):
    from grader.api import create_app

    with _serve(create_app(_settings(grade_timeout_s=0.3), loader=lambda: embedder)) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            assert wait_ready(c).status_code == 200
        yield srv


def test_a_timed_out_inline_question_is_not_prepared_to_the_end(impatient_server, monkeypatch):
    service = impatient_server.server.config.app.state.service
    seen = _slow_inline_encoder(monkeypatch, service)
    question = _big_question(seed=2)
    total = sum(len(t) for t in question["reference_answers"]) * 2  # each reference, and its sentences
    r = httpx.post(impatient_server.url + "/v1/grade", headers=AUTH, timeout=60,
                   json={"question": question, "answer": "Gradients vanish."})
    assert_error(r, 503, "unavailable")
    assert "GRADER_GRADE_TIMEOUT_S" in r.json()["error"]["message"]
    time.sleep(2.0)  # whatever the model thread still does for it, it does now
    assert sum(seen) < 0.5 * total, (sum(seen), total)


def test_a_timed_out_batch_is_not_graded_to_the_end(embedder, monkeypatch):
    from grader.api import create_app

    app = create_app(_settings(grade_timeout_s=0.3), loader=lambda: embedder)  # its own: no work left by others
    with _serve(app) as srv, httpx.Client(base_url=srv.url, timeout=60, headers=AUTH) as c:
        assert wait_ready(c).status_code == 200
        _slow_rubric_grading(monkeypatch, app.state.service)
        before = _counter(c.get("/metrics").text, "grader_answers_graded_total", outcome="ok")
        items = [{"rubric_id": "rnn_lstm", "question_id": "q5", "answer": _sentences(1_950, 100 + i)}
                 for i in range(50)]
        r = c.post("/v1/grade/batch", json={"items": items})
        assert_error(r, 503, "unavailable")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until a short request gets through: the model thread is idle
            time.sleep(0.1)
            short = c.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"})
            if short.status_code == 200:
                break
        graded = _counter(c.get("/metrics").text, "grader_answers_graded_total", outcome="ok") - before - 1
    assert graded < 25, graded


# -- 2. authentication before the body; slow clients ----------------------------------------
def _raw(server, data: bytes, *, close_after_send: bool = False, wait: float = 3.0) -> bytes:
    """Send raw bytes to the server; what it answers within ``wait`` seconds (b'' if nothing)."""
    with socket.create_connection((server.host, server.port), timeout=wait) as s:
        s.sendall(data)
        if close_after_send:
            return b""
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        return out


def _head(path: str, length: int, key: str | None = None) -> bytes:
    key_line = f"X-API-Key: {key}\r\n" if key else ""
    return (f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{key_line}"
            f"Content-Length: {length}\r\n\r\n").encode()


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_an_unauthenticated_body_is_never_waited_for(server, key):
    started = time.perf_counter()
    out = _raw(server, _head("/v1/grade", 900_000, key), wait=3.0)  # headers only: the body never comes
    assert out.startswith(b"HTTP/1.1 401"), out[:200]
    assert time.perf_counter() - started < 2.5
    assert b'"unauthorized"' in out and b"X-API-Key" in out


def test_many_unauthenticated_uploads_are_refused_without_buffering(server):
    service = server.server.config.app.state.service
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection((server.host, server.port), timeout=5)
            s.sendall(_head("/v1/grade/batch", 900_000) + b"{" + b" " * 50_000)
            socks.append(s)
        answers = [s.recv(200) for s in socks]
    finally:
        for s in socks:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 401") for a in answers), answers[:3]
    assert service.ready


def test_a_slow_body_is_answered_408(server):
    started = time.perf_counter()
    out = _raw(server, _head("/v1/grade", 1_000, KEY) + b'{"answer": "', wait=4.0)
    assert out.startswith(b"HTTP/1.1 408"), out[:200]
    assert b'"request_timeout"' in out and b"GRADER_BODY_TIMEOUT_S" in out
    assert time.perf_counter() - started < 3.0


def test_uvicorn_options_bound_idle_connections_and_headers():
    from grader.api.server import uvicorn_options

    options = uvicorn_options(_settings())
    assert 0 < options["timeout_keep_alive"] <= 10
    assert 0 < options["h11_max_incomplete_event_size"] <= 64 * 1024


# -- 3. caches bounded by bytes -------------------------------------------------------------
def test_prepared_question_cache_is_bounded_by_bytes(embedder):
    import tracemalloc

    from grader.engine import Grader
    from grader.rubric import ShortAnswerQuestion

    grader = Grader(None, embedder=embedder, cache_bytes=3_000_000)
    questions = [ShortAnswerQuestion.model_validate({"id": "inline", **_big_question(seed, 5)})
                 for seed in range(12)]
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        grader.prepare(questions[0])
        one = tracemalloc.get_traced_memory()[0] - base
        for q in questions[1:]:
            grader.prepare(q)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    estimate = grader.prepared_bytes
    assert estimate <= 3_000_000
    assert 1 <= len(grader._prepared) < len(questions)
    assert held < 3_000_000 + 2 * one  # what the cache really holds stays near its budget
    # The estimate is honest: within a factor of 2 of the measured size of one prepared question.
    per_question = estimate / len(grader._prepared)
    assert one / 2 <= per_question <= one * 2, (one, per_question)


def test_the_inline_cache_budget_comes_from_the_settings(embedder):
    from grader.api import create_app

    app = create_app(_settings(inline_cache_bytes=2_000_000), loader=lambda: embedder)
    with _serve(app) as srv, httpx.Client(base_url=srv.url, timeout=60, headers=AUTH) as c:
        assert wait_ready(c).status_code == 200
        for seed in range(8):
            r = c.post("/v1/grade", json={"question": _big_question(100 + seed, 5), "answer": "Gradients vanish."})
            assert r.status_code == 200
        inline = app.state.service.inline
        assert 0 < inline.prepared_bytes <= 2_000_000


# -- 5. a batch item that cannot be graded fails alone --------------------------------------
def test_batch_with_an_unknown_question_grades_the_other_items(client):
    items = [{"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"},
             {"rubric_id": "rnn_lstm", "question_id": "q9", "answer": "x"},
             {"rubric_id": "nope", "question_id": "q1", "answer": "x"},
             {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "z" * 2_001},
             {"rubric_id": "rnn_lstm", "question_id": "q1", "answer": "B"}]
    r = client.post("/v1/grade/batch", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["graded"], body["failed"]) == (2, 3)
    results = body["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert results[0]["result"]["points"] == 1.0 and results[4]["result"]["points"] == 1.0
    assert results[1]["result"] is None and results[1]["error"]["code"] == "unknown_question"
    assert results[1]["error"]["field"] == "items[1].question_id"
    assert results[2]["error"]["code"] == "unknown_rubric" and results[2]["error"]["field"] == "items[2].rubric_id"
    assert results[3]["error"]["code"] == "limit_exceeded" and results[3]["error"]["field"] == "items[3].answer"


# -- 6. client disconnects are not server errors --------------------------------------------
def test_a_client_that_disconnects_is_counted_as_499_not_500(server):
    url = server.url
    before = httpx.get(url + "/metrics").text
    for _ in range(3):
        _raw(server, _head("/v1/grade", 1_000, KEY) + b'{"answer": "', close_after_send=True)
    time.sleep(0.3)
    after = httpx.get(url + "/metrics").text
    name = "grader_http_requests_total"
    assert _counter(after, name, status="500") == _counter(before, name, status="500")
    assert _counter(after, name, status="499") - _counter(before, name, status="499") == 3
    assert _counter(after, "grader_http_errors_total", code="internal_error") == \
        _counter(before, "grader_http_errors_total", code="internal_error")


# -- 7. error bodies quote little of what the client sent -----------------------------------
LONG = "Q" * 100_000
SPACED = "word " * 20_000


@pytest.mark.parametrize("method, path, body", [
    ("post", "/v1/rubrics/rnn_lstm/attempts", {"answers": {LONG: "x"}}),
    ("post", "/v1/rubrics/rnn_lstm/attempts", {"answers": {f"{LONG}{i}": "x" for i in range(5)}}),
    ("post", "/v1/grade", {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "x", LONG: 1}),
    ("post", "/v1/grade", {"rubric_id": LONG, "question_id": "q5", "answer": "x"}),
    ("post", "/v1/grade", {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": {"x": SPACED}}),
    ("post", "/v1/grade", {"question": {"reference_answers": ["r"], "language": SPACED}, "answer": "x"}),
    ("post", "/v1/grade", {"question": {"reference_answers": ["r"], "max_points": SPACED}, "answer": "x"}),
    ("post", "/v1/grade/batch", {"items": [{"answer": 1, LONG[:500] + str(i): 1} for i in range(2_000)]}),
    ("post", f"/v1/rubrics/{'R' * 8_000}/attempts", {"answers": {}}),
    ("get", f"/v1/rubrics/{'R' * 8_000}", None),
])
def test_error_bodies_quote_at_most_200_characters_of_input(client, method, path, body):
    r = client.request(method.upper(), path, json=body)
    assert 400 <= r.status_code < 500, r.text[:300]
    err = r.json()["error"]
    assert set(err) == {"code", "message", "field"}
    text = r.text
    assert len(text) < 2_000, len(text)
    for long_run in ("Q" * 201, "R" * 201, "word " * 41):
        assert long_run not in text
