"""The ``responses=`` of each route for the OpenAPI docs: an example body for success and for each error."""

from __future__ import annotations

from grader.api import examples as ex
from grader.api.schemas import ErrorResponse

_ERRORS = {
    401: ("unauthorized", "missing or wrong API key in the X-API-Key header", None),
    404: ("unknown_rubric", "rubric 'rnn' is not loaded. Loaded rubrics: rnn_lstm.", "rubric_id"),
    408: ("request_timeout", "the request body did not arrive within 10 s (GRADER_BODY_TIMEOUT_S)", None),
    413: ("payload_too_large", "the request body is larger than 1000000 bytes (GRADER_MAX_BODY_BYTES)", None),
    422: ("limit_exceeded", ex.ERROR["error"]["message"], "answer"),
    503: ("unavailable", "the model is still loading; retry shortly", None),
}


def responses(ok: dict, *errors: int, media: str = "application/json") -> dict:
    """The ``responses=`` argument of a route: an example for 200 and for each error status."""
    out: dict = {200: {"content": {media: {"example": ok}}}}
    for status in errors:
        code, message, field = _ERRORS[status]
        out[status] = {"description": code.replace("_", " "), "model": ErrorResponse,
                       "content": {"application/json": {"example": {"error": {"code": code, "message": message,
                                                                              "field": field}}}}}
    return out
