"""ASGI middleware: the API key check, the request-body limit, and an access log and metrics that record
only ids and sizes.

They run in this order: the access log, then the key check on the headers alone, then the body limit,
which is the first to read the body; so no body of an unauthenticated request is ever read.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid

from grader.api.errors import error_body

log = logging.getLogger("grader.api.access")
_DOCS_PATHS = {"/docs", "/openapi.json", "/docs/oauth2-redirect"}


async def _send_json(send, status: int, body: dict, headers=()) -> None:
    import json

    payload = json.dumps(body).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": payload})


def _count_error(scope, code: str) -> None:
    app = scope.get("app")
    metrics = getattr(app.state, "metrics", None) if app is not None else None
    if metrics is not None:
        metrics.errors.labels(code).inc()


class ApiKeyMiddleware:
    """401 for a request under ``prefix`` whose X-API-Key header holds none of ``keys``, before its body is read.

    ``keys`` empty means open mode (allowed on loopback only, checked at startup). A request that
    passes carries the key's short fingerprint in ``scope["state"]["key_id"]`` for the access log
    and for :func:`~grader.api.deps.require_api_key`.
    """

    def __init__(self, app, keys: list[bytes], prefix: str = "/v1"):
        self.app = app
        self.keys = keys
        self.prefix = prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.keys or not scope["path"].startswith(self.prefix):
            return await self.app(scope, receive, send)
        from grader.api.deps import key_matches

        given = [value for name, value in scope["headers"] if name == b"x-api-key"]
        if not given or not given[0]:
            return await self._refuse(scope, send, "missing API key: send one of the configured keys in the "
                                                   "X-API-Key header")
        if not key_matches(given[0], self.keys):
            return await self._refuse(scope, send, "wrong API key in the X-API-Key header")
        scope.setdefault("state", {})["key_id"] = hashlib.sha256(given[0]).hexdigest()[:8]
        return await self.app(scope, receive, send)

    async def _refuse(self, scope, send, message: str) -> None:
        _count_error(scope, "unauthorized")
        # Connection: close, so the server need not read the body the client may still be sending.
        await _send_json(send, 401, error_body("unauthorized", message, "X-API-Key"),
                         headers=[(b"www-authenticate", b"APIKey")])


class BodyLimitMiddleware:
    """Reads the body up to ``max_bytes`` before the app sees it; a larger body gets 413, a slower one 408.

    Both a declared Content-Length and the bytes actually received are checked, so a
    chunked upload cannot slip past the limit. The whole body must arrive within
    ``timeout_s`` seconds, so a client that trickles bytes cannot hold a connection and its
    buffer open.
    """

    def __init__(self, app, max_bytes: int, timeout_s: float | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await _send_json(send, 400, error_body("bad_request", "Content-Length is not a number"))
            if size > self.max_bytes:
                return await self._too_large(scope, send, size)
        body = bytearray()
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), None if deadline is None
                                                 else max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return await self._too_slow(scope, send, len(body))
            if message["type"] == "http.disconnect":
                scope.setdefault("state", {})["disconnected"] = True
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await self._too_large(scope, send, len(body))
            if not message.get("more_body", False):
                break
        scope.setdefault("state", {})["body_bytes"] = len(body)
        pending = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replay():
            if pending:
                return pending.pop()
            return await receive()

        return await self.app(scope, replay, send)

    async def _too_slow(self, scope, send, size: int):
        scope.setdefault("state", {})["body_bytes"] = size
        _count_error(scope, "request_timeout")
        await _send_json(send, 408, error_body(
            "request_timeout", f"the request body did not arrive within {self.timeout_s:g} s (GRADER_BODY_TIMEOUT_S)"))

    async def _too_large(self, scope, send, size: int):
        scope.setdefault("state", {})["body_bytes"] = size
        _count_error(scope, "payload_too_large")
        await _send_json(send, 413, error_body(
            "payload_too_large", f"the request body is larger than {self.max_bytes} bytes (GRADER_MAX_BODY_BYTES)"))


async def send_wrapper_error(send) -> None:
    """A 500 in the one error shape, saying nothing about the cause."""
    await _send_json(send, 500, error_body("internal_error", "the server failed to handle the request"))


CLIENT_CLOSED = 499  # the status recorded for a request whose client went away before its answer (as nginx does)


class AccessLogMiddleware:
    """One log line and one metrics sample per request: request id, route template, status, time, sizes.

    A request whose client disconnected before the answer was sent is recorded with status 499,
    apart from the server's own failures (500).
    """

    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        sent = 0
        status_sent = False

        async def send_wrapper(message):
            nonlocal status, sent, status_sent
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        async def receive_wrapper():
            message = await receive()
            if message["type"] == "http.disconnect":
                state["disconnected"] = True
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception as exc:  # noqa: BLE001 - answered here so no traceback (which may quote input) is logged
            if state.get("disconnected") or _is_disconnect(exc):
                state["disconnected"] = True
            else:
                log.error("%s failed: unexpected %s", request_id, type(exc).__name__)
                self.metrics.errors.labels("internal_error").inc()
                if status_sent is False:
                    await send_wrapper_error(send_wrapper)
        finally:
            if state.get("disconnected") and not status_sent:
                status = CLIENT_CLOSED
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            if route is None:  # docs routes carry no route object; any other path is the client's text
                route = scope["path"] if scope["path"] in _DOCS_PATHS else "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info("%s %s %s %d %.1fms in=%dB out=%dB key=%s", request_id, scope["method"], route, status,
                     elapsed * 1000, state.get("body_bytes", 0), sent, state.get("key_id", "-"))


def _is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` says the client went away (a write to a closed connection)."""
    names = {"ClientDisconnect", "ClientDisconnected"}
    return type(exc).__name__ in names or isinstance(exc, (ConnectionResetError, BrokenPipeError))
