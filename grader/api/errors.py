"""One JSON shape for every error the service returns: ``{"error": {"code", "message", "field"}}``.

:class:`~grader.errors.GraderError` already knows its code, field and HTTP
status; this module turns it, request validation errors, HTTP errors and
anything unexpected into that body. An error body quotes at most ``MAX_ECHO``
characters of anything the client sent (a field name, an id, a value).
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from grader.errors import GraderError

log = logging.getLogger("grader.api")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests", 503: "unavailable"}
MAX_ECHO = 200  # characters of client input an error body may quote
_MAX_MESSAGE = 1_000  # a message longer than this is cut: it can only be long by quoting the client
_MAX_LISTED = 3  # validation errors spelled out in one message


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """``text`` with each lone surrogate (which UTF-8 cannot encode) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut, and valid Unicode."""
    text = valid_unicode(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def error_body(code: str, message: str, field: str | None = None) -> dict:
    """The one error body of the API; ``message`` and ``field`` are cut so that no body echoes much input."""
    return {"error": {"code": code, "message": clip(message, _MAX_MESSAGE),
                      "field": None if field is None else clip(field)}}


def grader_error_body(exc: GraderError) -> dict:
    """:func:`error_body` of a :class:`GraderError`."""
    err = exc.to_dict()["error"]
    return error_body(err["code"], err["message"], err["field"])


def error_response(status: int, code: str, message: str, field: str | None = None, headers=None) -> JSONResponse:
    """A JSONResponse holding :func:`error_body`, counted in the error metric when the app has one."""
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def outcome_error(exc: BaseException, headers: dict | None = None) -> JSONResponse:
    """The response for an answer whose grading raised: its GraderError, or a 500 that names no detail."""
    if isinstance(exc, GraderError):
        return JSONResponse(grader_error_body(exc), status_code=exc.http_status, headers=headers)
    log.error("grading an answer failed: %s", type(exc).__name__)
    return error_response(500, "internal_error", "grading this answer failed", headers=headers)


def field_path(loc) -> str | None:
    """``("body", "items", 3, "answer")`` -> ``"items[3].answer"``; None for the whole body."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = clip(str(part), 60)  # a dict key or an unknown field's name is the client's text
            out += f".{part}" if out else part
    return clip(out) if out else None


def _describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    lines, first = [], None
    errors = exc.errors()
    for err in errors[:_MAX_LISTED]:
        field = field_path(err.get("loc", ()))
        first = first or field
        msg = clip(str(err.get("msg", "invalid value")).removeprefix("Value error, "))
        if err.get("type") == "json_invalid":
            msg = "the body is not valid JSON"
        elif field is None and err.get("type") in ("model_attributes_type", "dict_type"):
            msg = "the body must be a JSON object sent with Content-Type: application/json"
        elif err.get("type") == "missing":
            msg = "field required"
        lines.append(f"{field}: {msg}" if field else msg)
    if len(errors) > _MAX_LISTED:
        lines.append(f"and {len(errors) - _MAX_LISTED} more error(s)")
    return "; ".join(lines) + ".", first


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the one JSON shape."""

    def _count(request: Request, code: str) -> None:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.errors.labels(code).inc()

    @app.exception_handler(GraderError)
    async def _grader_error(request: Request, exc: GraderError):
        _count(request, exc.code)
        headers = {"WWW-Authenticate": "APIKey"} if exc.http_status == 401 else None
        if exc.http_status == 503:
            headers = {"Retry-After": "1"}
        return JSONResponse(grader_error_body(exc), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        _count(request, "invalid_request")
        message, field = _describe_validation(exc)
        return error_response(422, "invalid_request", message, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        _count(request, code)
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Only the type: an exception's message may quote what the client sent.
        log.error("request %s failed: unexpected %s", getattr(request.state, "request_id", "-"), type(exc).__name__)
        _count(request, "internal_error")
        return error_response(500, "internal_error", "the server failed to handle the request")
