"""Property tests of the HTTP API (issue 22): whatever a client sends, never a 5xx, and every 4xx in the one
documented error shape.

Bodies come from Hypothesis: any JSON value, bodies close to valid requests (the right field names
holding odd values: surrogates, NULs, right-to-left marks, other scripts, wrong types), and random
bytes. The server is a real uvicorn on loopback with the real model. About 20 s by default; set
HYPOTHESIS_PROFILE=long for a longer run by hand.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RUBRIC
from tests.test_api_service import wait_ready

KEY = "properties-key-0123"
AUTH = {"X-API-Key": KEY}
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
RUN = settings(max_examples=1_500 if LONG else 100, deadline=None, derandomize=not LONG,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUTES = ["/v1/grade", "/v1/grade/batch", "/v1/rubrics/rnn_lstm/attempts"]
ERROR_CODES = {"invalid_request", "invalid_input", "limit_exceeded", "payload_too_large", "unknown_rubric",
               "unknown_question", "unauthorized", "not_found", "method_not_allowed", "unsupported_media_type",
               "request_timeout", "bad_request", "invalid_rubric"}


@pytest.fixture(scope="module")
def client(embedder):
    from grader.api import create_app
    from grader.api.server import ServerThread
    from grader.settings import Settings

    s = Settings(api_keys=KEY, rubrics_dir=RUBRIC.parent, max_body_bytes=200_000, max_answer_chars=5_000,
                 max_batch_size=8, max_question_chars=20_000)
    with ServerThread(create_app(s, loader=lambda: embedder)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60, headers=AUTH) as c:
        assert wait_ready(c).status_code == 200
        yield c


# -- strategies -------------------------------------------------------------------------------
ODD = ["\ud800", "\udfff", "\x00", "\u202e", "\u200b", "\ufeff", "\u0301", "e\u0301", "\U0001f600", "\r\n",
       "مرحبا بالعالم", "梯度消失", "Ǆ", "ß", "İ", "x" * 6_000, "word " * 1_200, "", " ", ".", "?!",
       "I do not know."]
text = st.one_of(st.text(max_size=60), st.sampled_from(ODD),
                 st.lists(st.sampled_from(ODD) | st.text(max_size=10), max_size=6).map("".join))
scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                   st.floats(allow_nan=False, allow_infinity=False), text)
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(text, inner, max_size=4), max_leaves=12)
ids = st.sampled_from(["rnn_lstm", "q1", "q3", "q5", "q9", "nope", "..", "a" * 201]) | text
number = st.one_of(st.sampled_from([0, -1, 0.5, 1, 5, 1e308, -1e-300, 2**63]), st.floats(allow_nan=False,
                                                                                        allow_infinity=False))
phrase = st.fixed_dictionaries({"text": text}, optional={"points": number | json_value,
                                                          "alternatives": st.lists(text, max_size=12) | json_value,
                                                          "hint": text | st.none(), "required": st.booleans()})
inline = st.fixed_dictionaries({}, optional={
    "prompt": text, "reference_answers": st.lists(text, max_size=4) | json_value,
    "key_phrases": st.lists(phrase, max_size=4) | json_value,
    "misconceptions": st.lists(st.fixed_dictionaries({"text": text}, optional={"penalty": number}), max_size=3),
    "max_points": number | json_value, "points_step": number, "criteria_weight": number, "language": text,
})
level = st.sampled_from(["student", "instructor", "none"]) | json_value
grade_body = st.fixed_dictionaries({}, optional={"rubric_id": ids, "question_id": ids, "answer": text | json_value,
                                                 "question": inline | json_value, "feedback_level": level})
batch_body = st.fixed_dictionaries({"items": st.lists(grade_body | json_value, max_size=10) | json_value},
                                   optional={"feedback_level": level})
attempt_body = st.fixed_dictionaries({"answers": st.dictionaries(ids, text | json_value, max_size=6) | json_value},
                                     optional={"attempt_id": ids | json_value, "feedback_level": level})
near_valid = {"/v1/grade": grade_body, "/v1/grade/batch": batch_body, "/v1/rubrics/rnn_lstm/attempts": attempt_body}


def assert_sane(r: httpx.Response) -> None:
    """No 5xx; a 4xx body is exactly the documented error shape; a 200 body is JSON."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    body = r.json()
    if r.status_code >= 400:
        assert set(body) == {"error"}, body
        err = body["error"]
        assert set(err) == {"code", "message", "field"}, err
        assert err["code"] in ERROR_CODES, err
        assert isinstance(err["message"], str) and err["message"], err
        assert err["field"] is None or isinstance(err["field"], str), err
        assert len(r.content) < 4_000, len(r.content)


def _post_json(client, route: str, body) -> httpx.Response:
    # ensure_ascii keeps lone surrogates sendable: they travel as \ud800 escapes, as a JSON client may send them.
    return client.post(route, content=json.dumps(body, ensure_ascii=True).encode(),
                       headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("route", ROUTES)
@RUN
@given(body=json_value)
def test_any_json_body_never_gets_a_5xx(client, route, body):
    assert_sane(_post_json(client, route, body))


@pytest.mark.parametrize("route", ROUTES)
@RUN
@given(data=st.data())
def test_near_valid_bodies_never_get_a_5xx(client, route, data):
    assert_sane(_post_json(client, route, data.draw(near_valid[route])))


@pytest.mark.parametrize("route", ROUTES)
@RUN
@given(raw=st.binary(max_size=3_000), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_random_bytes_never_get_a_5xx(client, route, raw, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    assert_sane(client.post(route, content=raw, headers=headers))
