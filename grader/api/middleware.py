"""ASGI middleware: the request-body limit, and an access log and metrics that record only ids and sizes."""

from __future__ import annotations

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


class BodyLimitMiddleware:
    """Reads the body up to ``max_bytes`` before the app sees it; a larger body gets 413.

    Both a declared Content-Length and the bytes actually received are checked, so a
    chunked upload cannot slip past the limit.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

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
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
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

    async def _too_large(self, scope, send, size: int):
        scope.setdefault("state", {})["body_bytes"] = size
        metrics = getattr(scope.get("app").state, "metrics", None) if scope.get("app") else None
        if metrics is not None:
            metrics.errors.labels("payload_too_large").inc()
        await _send_json(send, 413, error_body(
            "payload_too_large", f"the request body is larger than {self.max_bytes} bytes (GRADER_MAX_BODY_BYTES)"))


async def send_wrapper_error(send) -> None:
    """A 500 in the one error shape, saying nothing about the cause."""
    await _send_json(send, 500, error_body("internal_error", "the server failed to handle the request"))


class AccessLogMiddleware:
    """One log line and one metrics sample per request: request id, route template, status, time, sizes."""

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

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # noqa: BLE001 - answered here so no traceback (which may quote input) is logged
            log.error("%s failed: unexpected %s", request_id, type(exc).__name__)
            self.metrics.errors.labels("internal_error").inc()
            if status_sent is False:
                await send_wrapper_error(send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            if route is None:  # docs routes carry no route object; any other path is the client's text
                route = scope["path"] if scope["path"] in _DOCS_PATHS else "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info("%s %s %s %d %.1fms in=%dB out=%dB key=%s", request_id, scope["method"], route, status,
                     elapsed * 1000, state.get("body_bytes", 0), sent, state.get("key_id", "-"))
