"""Startup, readiness, micro-batching and failure isolation of the HTTP service, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import RUBRIC, ROOT
from tests.test_api_service import Q5_ANSWER, assert_error, wait_ready

KEY = "lifecycle-key-42"
AUTH = {"X-API-Key": KEY}


def _settings(**kw):
    from grader.settings import Settings

    return Settings(**{"api_keys": KEY, "rubrics_dir": RUBRIC.parent, **kw})


def _serve(app):
    from grader.api.server import ServerThread

    return ServerThread(app)


def assert_same_grade(got: dict, expected: dict) -> None:
    """Equal grades: every field exact except floats, which may differ by encoder batch padding."""
    expected = json.loads(json.dumps(expected))
    assert (got["points"], got["label"], got["needs_review"]) == (expected["points"], expected["label"],
                                                                  expected["needs_review"])
    assert [c["found"] for c in got["concepts"]] == [c["found"] for c in expected["concepts"]]
    assert [f["code"] for f in got["flags"]] == [f["code"] for f in expected["flags"]]
    assert got["confidence"] == pytest.approx(expected["confidence"], abs=2e-3)
    for name, value in expected["signals"].items():
        assert got["signals"][name] == pytest.approx(value, abs=2e-3), name


# -- readiness ----------------------------------------------------------------------------
def test_healthz_answers_at_once_and_readyz_only_after_the_model_loads(embedder):
    from grader.api import create_app

    gate = threading.Event()

    def slow_loader():  # the real model, released only when the test says so
        gate.wait(60)
        return embedder

    with _serve(create_app(_settings(), loader=slow_loader)) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["status"] == "loading"
        r = c.post("/v1/grade", headers=AUTH, json={"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"})
        err = assert_error(r, 503, "unavailable")
        assert "loading" in err["message"] and r.headers["Retry-After"]
        assert c.get("/v1/rubrics", headers=AUTH).status_code == 200  # reads need no model
        gate.set()
        r = wait_ready(c)
        assert r.status_code == 200
        assert r.json()["status"] == "ready" and r.json()["model"]["model"] == "all-MiniLM-L6-v2"
        r = c.post("/v1/grade", headers=AUTH, json={"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"})
        assert r.status_code == 200 and r.json()["points"] == 1.0


def test_a_model_that_fails_to_load_keeps_readyz_503_with_the_reason(embedder):
    from grader.api import create_app
    from grader.errors import ModelError

    def broken_loader():  # failure injection
        raise ModelError("weights sha256 mismatch", source="models/x")

    with _serve(create_app(_settings(), loader=broken_loader)) as srv, httpx.Client(base_url=srv.url) as c:
        deadline = time.monotonic() + 10
        while c.get("/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "failed"
        r = c.post("/v1/grade", headers=AUTH, json={"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"})
        err = assert_error(r, 503, "unavailable")
        assert "sha256 mismatch" in err["message"]


# -- batching -----------------------------------------------------------------------------
async def _post_together(url: str, bodies: list[dict], path: str = "/v1/grade") -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        return await asyncio.gather(*(c.post(path, headers=AUTH, json=b) for b in bodies))


@pytest.fixture(scope="module")
def slow_batch_server(embedder):
    """A server that collects requests for 300 ms, so concurrent requests surely share a batch."""
    from grader.api import create_app

    with _serve(create_app(_settings(batch_wait_ms=300, batch_max_size=8))) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            assert wait_ready(c).status_code == 200
        yield srv


def test_two_concurrent_requests_share_one_batch_and_both_are_right(slow_batch_server, grader):
    other = "LSTMs have more parameters so they remember more."
    bodies = [{"rubric_id": "rnn_lstm", "question_id": "q5", "answer": Q5_ANSWER, "feedback_level": "instructor"},
              {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": other, "feedback_level": "instructor"}]
    before = httpx.get(slow_batch_server.url + "/metrics").text
    r1, r2 = asyncio.run(_post_together(slow_batch_server.url, bodies))
    assert r1.status_code == 200 and r2.status_code == 200
    assert r1.headers["X-Batch-Id"] == r2.headers["X-Batch-Id"]
    assert r1.headers["X-Batch-Size"] == r2.headers["X-Batch-Size"] == "2"
    # The same grades as offline (padding in a batch moves floats in the last digits only).
    assert_same_grade(r1.json(), grader.grade("q5", Q5_ANSWER).to_dict())
    assert_same_grade(r2.json(), grader.grade("q5", other).to_dict())
    after = httpx.get(slow_batch_server.url + "/metrics").text

    def batches_of_two(text):  # cumulative histogram buckets: size <= 2 minus size <= 1
        le = {line.split('le="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line.startswith("grader_batch_size_bucket")}
        return le["2.0"] - le["1.0"]

    assert batches_of_two(after) - batches_of_two(before) == 1


def test_a_failing_item_fails_only_itself(slow_batch_server, monkeypatch):
    service = slow_batch_server.server.config.app.state.service
    grader = service.graders["rnn_lstm"]
    real = grader.grade_pairs

    def grade_pairs(pairs):  # failure injection: any batch holding the poisoned answer raises
        if any(answer == "POISON" for _, answer in pairs):
            raise RuntimeError("injected failure")
        return real(pairs)

    monkeypatch.setattr(grader, "grade_pairs", grade_pairs)
    bodies = [{"rubric_id": "rnn_lstm", "question_id": "q5", "answer": Q5_ANSWER},
              {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "POISON"},
              {"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"}]
    good, bad, good2 = asyncio.run(_post_together(slow_batch_server.url, bodies))
    assert good.headers["X-Batch-Id"] == bad.headers["X-Batch-Id"] == good2.headers["X-Batch-Id"]
    assert good.status_code == 200 and good2.status_code == 200
    assert good2.json()["points"] == 1.0
    err = assert_error(bad, 500, "internal_error")
    assert "POISON" not in err["message"]

    r = httpx.post(slow_batch_server.url + "/v1/grade/batch", headers=AUTH, timeout=60,
                   json={"items": bodies})
    assert r.status_code == 200
    body = r.json()
    assert (body["graded"], body["failed"]) == (2, 1)
    assert body["results"][1]["error"]["code"] == "internal_error" and body["results"][1]["result"] is None
    assert body["results"][0]["result"]["question_id"] == "q5" and body["results"][2]["result"]["points"] == 1.0


# -- startup refusals ---------------------------------------------------------------------
def test_refuses_to_start_without_keys_unless_open():
    from grader.api import create_app
    from grader.errors import ConfigError

    with pytest.raises(ConfigError, match="GRADER_API_KEYS"):
        create_app(_settings(api_keys=""))
    with pytest.raises(ConfigError, match="loopback"):
        create_app(_settings(api_keys="", open=True, host="0.0.0.0"))


def test_open_mode_on_loopback_needs_no_key(embedder):
    from grader.api import create_app

    with _serve(create_app(_settings(api_keys="", open=True))) as srv:
        assert httpx.get(srv.url + "/v1/rubrics").status_code == 200


def _cli(*args, env=None, timeout=60):
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "grader", "serve", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_refuses_without_keys_and_open_off_loopback():
    r = _cli()
    assert r.returncode == 2 and "GRADER_API_KEYS" in r.stderr
    r = _cli("--open", "--host", "0.0.0.0")
    assert r.returncode == 2 and "loopback" in r.stderr and "0.0.0.0" in r.stderr


def test_cli_stops_on_an_invalid_rubric_naming_the_file(tmp_path):
    (tmp_path / "good.yaml").write_text(RUBRIC.read_text(encoding="utf-8"), encoding="utf-8")
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: broken\nquestions:\n  - id: q1\n    type: true_false\n    correct: maybe\n", encoding="utf-8")
    r = _cli("--rubrics", str(tmp_path), env={"GRADER_API_KEYS": KEY})
    assert r.returncode == 2
    assert "broken.yaml" in r.stderr and "correct" in r.stderr
