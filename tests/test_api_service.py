"""The HTTP service over real HTTP: a uvicorn server on 127.0.0.1 in a thread, driven with httpx."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from tests.conftest import RUBRIC

KEYS = ("key-one-0123456789", "key-two-abcdefghij")
AUTH = {"X-API-Key": KEYS[0]}
Q5_ANSWER = ("The RNN multiplies by the same weight matrix at every step, so gradients vanish; "
             "the LSTM keeps a cell state updated additively through gates.")


def wait_ready(client: httpx.Client, timeout: float = 120.0) -> httpx.Response:
    """Poll /readyz until 200."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/readyz")
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(embedder):
    from grader.api import create_app
    from grader.api.server import ServerThread
    from grader.settings import Settings

    settings = Settings(api_keys=",".join(KEYS), rubrics_dir=RUBRIC.parent, max_body_bytes=20_000,
                        max_answer_chars=2_000, max_batch_size=4, batch_wait_ms=2)
    with ServerThread(create_app(settings)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert wait_ready(c).status_code == 200
        yield c


def assert_error(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field
    return body["error"]


# -- auth ---------------------------------------------------------------------------------
def test_missing_key_is_401(client):
    r = client.post("/v1/grade", json={"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"})
    err = assert_error(r, 401, "unauthorized", "X-API-Key")
    assert "missing" in err["message"]


@pytest.mark.parametrize("key", ["wrong", KEYS[0][:-1], KEYS[0] + "x", KEYS[0].upper(), b"\xe9-not-ascii"])
def test_wrong_key_is_401(client, key):
    r = client.get("/v1/rubrics", headers={"X-API-Key": key})
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize("key", KEYS)
def test_every_configured_key_is_accepted(client, key):
    r = client.get("/v1/rubrics", headers={"X-API-Key": key})
    assert r.status_code == 200


def test_keys_are_compared_in_constant_time_against_every_key(client, monkeypatch):
    import hmac

    from grader.api import deps

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    r = client.get("/v1/rubrics", headers={"X-API-Key": KEYS[0]})
    assert r.status_code == 200
    # Every key is compared even after the first matches, so timing does not tell which key matched.
    assert [b for _, b in calls] == [k.encode() for k in KEYS]


def test_probes_need_no_key(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


# -- limits -------------------------------------------------------------------------------
def test_body_over_limit_is_413(client):
    r = client.post("/v1/grade", headers=AUTH,
                    json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "x" * 25_000})
    assert_error(r, 413, "payload_too_large")


def test_chunked_body_over_limit_is_413(client):
    def chunks():
        yield b'{"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "'
        for _ in range(30):
            yield b"y" * 1000
        yield b'"}'

    r = client.post("/v1/grade", headers={**AUTH, "Content-Type": "application/json"}, content=chunks())
    assert_error(r, 413, "payload_too_large")


def test_answer_over_limit_is_422_naming_the_field(client):
    r = client.post("/v1/grade", headers=AUTH, json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "z" * 2001})
    err = assert_error(r, 422, "limit_exceeded", "answer")
    assert "'answer'" in err["message"] and "2000" in err["message"]


def test_answer_at_limit_is_graded(client):
    r = client.post("/v1/grade", headers=AUTH, json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "z" * 2000})
    assert r.status_code == 200


def test_batch_item_answer_over_limit_fails_that_item_alone(client):
    items = [{"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"},
             {"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "z" * 2001}]
    r = client.post("/v1/grade/batch", headers=AUTH, json={"items": items})
    assert r.status_code == 200
    body = r.json()
    assert (body["graded"], body["failed"]) == (1, 1)
    assert body["results"][0]["result"]["points"] == 1.0
    err = body["results"][1]["error"]
    assert (err["code"], err["field"]) == ("limit_exceeded", "items[1].answer")


def test_attempt_answer_over_limit_names_the_question(client):
    r = client.post("/v1/rubrics/rnn_lstm/attempts", headers=AUTH, json={"answers": {"q5": "z" * 2001}})
    assert_error(r, 422, "limit_exceeded", "answers.q5")


def test_batch_over_limit_is_422(client):
    items = [{"rubric_id": "rnn_lstm", "question_id": "q3", "answer": "true"}] * 5
    r = client.post("/v1/grade/batch", headers=AUTH, json={"items": items})
    err = assert_error(r, 422, "limit_exceeded", "items")
    assert "5" in err["message"] and "4" in err["message"]


# -- validation ---------------------------------------------------------------------------
@pytest.mark.parametrize("body, field", [
    ({"rubric_id": "rnn_lstm", "question_id": "q5"}, "answer"),
    ({"rubric_id": "rnn_lstm", "question_id": "q5", "answer": 5}, "answer"),
    ({"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "x", "extra": 1}, "extra"),
    ({"rubric_id": "rnn lstm!", "question_id": "q5", "answer": "x"}, "rubric_id"),
    ({"answer": "x"}, None),
    ({"rubric_id": "rnn_lstm", "answer": "x"}, None),
    ({"rubric_id": "rnn_lstm", "question_id": "q5", "answer": "x",
      "question": {"reference_answers": ["r"]}}, None),
    ({"question": {"prompt": "p"}, "answer": "x"}, "question"),
    ({"question": {"reference_answers": ["r"], "max_points": 0}, "answer": "x"}, "question.max_points"),
    ({"question": {"key_phrases": [{"text": "", "points": 1}]}, "answer": "x"}, "question.key_phrases[0].text"),
])
def test_invalid_grade_requests_are_422(client, body, field):
    r = client.post("/v1/grade", headers=AUTH, json=body)
    err = assert_error(r, 422, "invalid_request")
    if field is not None:
        assert err["field"] == field


def test_body_that_is_not_json_is_422(client):
    r = client.post("/v1/grade", headers={**AUTH, "Content-Type": "application/json"}, content=b"{not json")
    err = assert_error(r, 422, "invalid_request")
    assert "JSON" in err["message"]


def test_unknown_rubric_and_question_are_404(client):
    r = client.post("/v1/grade", headers=AUTH, json={"rubric_id": "nope", "question_id": "q5", "answer": "x"})
    err = assert_error(r, 404, "unknown_rubric", "rubric_id")
    assert "rnn_lstm" in err["message"]
    r = client.post("/v1/grade", headers=AUTH, json={"rubric_id": "rnn_lstm", "question_id": "q9", "answer": "x"})
    assert_error(r, 404, "unknown_question", "question_id")
    assert_error(client.get("/v1/rubrics/nope", headers=AUTH), 404, "unknown_rubric")
    assert_error(client.get("/v1/nothing-here", headers=AUTH), 404, "not_found")


def test_attempt_with_an_unknown_question_is_rejected_not_dropped(client):
    r = client.post("/v1/rubrics/rnn_lstm/attempts", headers=AUTH, json={"answers": {"q1": "B", "q9": "x"}})
    err = assert_error(r, 422, "invalid_input", "answers.q9")
    assert "q9" in err["message"]


# -- grading ------------------------------------------------------------------------------
def test_grade_returns_the_engine_result(client, grader):
    r = client.post("/v1/grade", headers=AUTH, json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": Q5_ANSWER,
                                                     "feedback_level": "instructor"})
    assert r.status_code == 200
    assert r.headers["X-Batch-Id"] and r.headers["X-Request-Id"]
    expected = grader.grade("q5", Q5_ANSWER).to_dict()
    assert r.json() == json.loads(json.dumps(expected))


def test_grade_inline_question(client, grader):
    question = {"prompt": "Why does ice float on water?",
                "reference_answers": ["Ice is less dense than liquid water."],
                "key_phrases": [{"text": "ice is less dense than water", "points": 2}], "max_points": 2}
    r = client.post("/v1/grade", headers=AUTH, json={"question": question, "answer": "Ice is less dense than water.",
                                                     "feedback_level": "instructor"})
    assert r.status_code == 200
    body = r.json()
    assert body["question_type"] == "short_answer" and body["max_points"] == 2
    assert 0 <= body["points"] <= 2
    assert body["concepts"][0]["concept"] == "ice is less dense than water"
    assert body["concepts"][0]["found"] is True


def test_batch_returns_results_in_order(client, grader):
    pairs = [("q5", Q5_ANSWER), ("q1", "B"), ("q4", "true"), ("q5", "")]
    items = [{"rubric_id": "rnn_lstm", "question_id": q, "answer": a} for q, a in pairs]
    r = client.post("/v1/grade/batch", headers=AUTH, json={"items": items, "feedback_level": "instructor"})
    assert r.status_code == 200
    body = r.json()
    assert body["graded"] == 4 and body["failed"] == 0
    expected = [json.loads(json.dumps(x.to_dict())) for x in grader.grade_many(pairs)]
    assert [x["index"] for x in body["results"]] == [0, 1, 2, 3]
    assert [x["result"] for x in body["results"]] == expected


def test_attempt_with_all_three_question_types(client, grader):
    answers = {"q1": "B", "q2": "A", "q3": "True", "q4": "true", "q5": Q5_ANSWER}
    r = client.post("/v1/rubrics/rnn_lstm/attempts", headers=AUTH,
                    json={"attempt_id": "student-7-try-1", "answers": answers})
    assert r.status_code == 200
    body = r.json()
    assert body["rubric_id"] == "rnn_lstm" and body["attempt_id"] == "student-7-try-1"
    results = {x["question_id"]: x for x in body["results"]}
    assert [x["question_id"] for x in body["results"]] == ["q1", "q2", "q3", "q4", "q5"]
    assert {x["question_type"] for x in body["results"]} == {"multiple_choice", "true_false", "short_answer"}
    assert (results["q1"]["points"], results["q2"]["points"]) == (1.0, 0.0)
    assert (results["q3"]["points"], results["q4"]["points"]) == (1.0, 0.0)
    assert results["q5"]["points"] == grader.grade("q5", Q5_ANSWER).points
    assert body["points"] == pytest.approx(sum(x["points"] for x in body["results"]))
    assert body["max_points"] == 9.0 and body["answered"] == 5


def test_attempt_unanswered_questions_score_zero(client):
    r = client.post("/v1/rubrics/rnn_lstm/attempts", headers=AUTH, json={"answers": {"q3": "true"}})
    assert r.status_code == 200
    body = r.json()
    assert body["points"] == 1.0 and body["answered"] == 1 and len(body["results"]) == 5
    q5 = body["results"][4]
    assert q5["points"] == 0 and [f["code"] for f in q5["flags"]] == ["empty"]


# -- rubric reads -------------------------------------------------------------------------
def test_rubric_list(client):
    r = client.get("/v1/rubrics", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"rubrics": [{"id": "rnn_lstm", "title": "Recurrent networks and LSTMs", "language": "en",
                                     "questions": 5, "max_points": 9.0}]}


def test_rubric_read_leaks_no_answer_key(client, rubric):
    r = client.get("/v1/rubrics/rnn_lstm", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert [q["id"] for q in body["questions"]] == ["q1", "q2", "q3", "q4", "q5"]
    assert [q["max_points"] for q in body["questions"]] == [1, 1, 1, 1, 5]
    assert [o["id"] for o in body["questions"][0]["options"]] == ["A", "B", "C", "D"]
    text = r.text
    for q in body["questions"]:
        assert set(q) <= {"id", "type", "prompt", "max_points", "options"}
    secrets = []
    for q in rubric.questions:
        secrets.append(q.explanation)
        if q.type == "short_answer":
            secrets += list(q.reference_answers)
            for kp in q.key_phrases:
                secrets += [kp.text, *kp.alternatives, kp.hint]
            for mc in q.misconceptions:
                secrets += [mc.text, *mc.alternatives, mc.feedback]
    for secret in filter(None, secrets):
        assert json.dumps(secret)[1:-1] not in text, secret
    for key in ("correct", "reference_answers", "key_phrases", "explanation", "misconceptions", "alternatives",
                "hint", "examples", "needs_confirmation"):
        assert f'"{key}"' not in text


# -- docs, metrics, logs ------------------------------------------------------------------
def test_openapi_has_an_example_request_and_response_on_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = {"/v1/grade", "/v1/grade/batch", "/v1/rubrics/{rubric_id}/attempts", "/v1/rubrics",
             "/v1/rubrics/{rubric_id}", "/healthz", "/readyz", "/metrics"}
    assert paths <= set(spec["paths"])
    for path in paths:
        for method, op in spec["paths"][path].items():
            ok = op["responses"]["200"]["content"]
            assert any("example" in media or "examples" in media for media in ok.values()), (method, path)
            if method == "post":
                media = op["requestBody"]["content"]["application/json"]
                schema = media.get("schema", {})
                ref = schema.get("$ref", "").rsplit("/", 1)[-1]
                has = "examples" in media or "examples" in spec["components"]["schemas"].get(ref, {})
                assert has, path
    assert client.get("/docs").status_code == 200


def test_metrics_count_requests_errors_latency_and_batches(client):
    client.get("/v1/rubrics")  # 401
    text = client.get("/metrics").text
    for name in ("grader_http_requests_total", "grader_http_request_seconds_bucket", "grader_http_errors_total",
                 "grader_batch_size_bucket", "grader_queue_depth", "grader_ready 1.0"):
        assert name in text, name
    assert 'grader_http_errors_total{code="unauthorized"}' in text


def test_logs_hold_ids_and_sizes_but_nothing_the_client_sent(client, caplog):
    secret_answer = "Zebra-Quokka-771 says the cell state is additive"
    secret_key = "not-a-key-Wombat-993"
    with caplog.at_level(logging.DEBUG):
        client.post("/v1/grade", headers=AUTH,
                    json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": secret_answer})
        client.post("/v1/grade", headers={"X-API-Key": secret_key},
                    json={"rubric_id": "rnn_lstm", "question_id": "q5", "answer": secret_answer})
        client.post("/v1/grade", headers=AUTH, json={"rubric_id": "Secret-Rubric-Otter", "question_id": "q5",
                                                     "answer": secret_answer})
        client.get("/v1/Secret-Path-Lynx", headers=AUTH)
        time.sleep(0.1)
    # The server's own loggers (grader.*, uvicorn.*); httpx's client-side logs are not the server's.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "POST /v1/grade 200" in logged
    for secret in (secret_answer, "Zebra", secret_key, KEYS[0], "Otter", "Lynx"):
        assert secret not in logged
