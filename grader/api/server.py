"""Run the app with uvicorn in a background thread, on loopback: for tests, benchmarks and notebooks."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

# An idle keep-alive connection is closed after this many seconds, and a request's line and headers
# may hold at most this many bytes before they are complete (h11 answers 431 past it), so idle or
# trickling connections cost little. A slow body is ended by Settings.body_timeout_s (408).
KEEP_ALIVE_S = 5
MAX_HEADER_BYTES = 16 * 1024


def uvicorn_options(settings=None) -> dict:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that bound idle and slow connections.

    ``settings`` (:class:`~grader.settings.Settings`) caps the keep-alive wait at its
    ``body_timeout_s`` too, so no connection waits longer for a client than a body may take.
    """
    keep_alive = KEEP_ALIVE_S
    if settings is not None:
        keep_alive = max(1, min(KEEP_ALIVE_S, int(settings.body_timeout_s)))
    return {"timeout_keep_alive": keep_alive, "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
            "server_header": False}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerThread:
    """A real uvicorn server for ``app`` in a daemon thread; use as a context manager.

    >>> with ServerThread(create_app(settings)) as server:
    ...     httpx.get(server.url + "/healthz")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None, log_level: str = "warning"):
        self.host = host
        self.port = port or free_port(host)
        settings = getattr(getattr(app, "state", None), "settings", None)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level=log_level, access_log=False,
                                lifespan="on", **uvicorn_options(settings))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="grader-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "ServerThread":
        """Start serving and wait until the socket accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread stopped during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not start within {timeout:g} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
