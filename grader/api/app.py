"""The app factory: ``create_app(settings)`` builds the FastAPI app of the grading service."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import FastAPI

from grader.api.docs import add_docs
from grader.api.errors import install_error_handlers
from grader.api.metrics import Metrics
from grader.api.middleware import AccessLogMiddleware, ApiKeyMiddleware, BodyLimitMiddleware
from grader.api.routes import grading, health
from grader.api.routes import rubrics as rubric_routes
from grader.api.service import GradingService
from grader.settings import Settings, get_settings

DESCRIPTION = """Grades short answers, multiple-choice and true/false questions against rubrics.

Send one of the keys in `GRADER_API_KEYS` in the `X-API-Key` header on every `/v1` request.
Every error has the shape `{"error": {"code", "message", "field"}}`.
"""


def create_app(settings: Settings | None = None, *, rubrics: dict | None = None,
               loader: Callable[[], object] | None = None) -> FastAPI:
    """The service's app.

    ``settings`` defaults to :func:`~grader.settings.get_settings`; ``rubrics``
    (id -> Rubric) defaults to every rubric in ``settings.rubrics_dir``, validated
    now, so an invalid one raises :class:`~grader.errors.RubricError` before
    anything is served. ``loader`` returns a loaded embedder (default: the shared
    one for the configured model); it runs in the background after startup.
    """
    from grader import __version__
    from grader.rubric import load_rubric_dir

    settings = settings or get_settings()
    settings.check_security()
    if rubrics is None:
        rubrics = load_rubric_dir(settings.rubrics_dir)
    logging.getLogger("grader").setLevel(settings.log_level.upper())
    metrics = Metrics()
    service = GradingService(settings, rubrics, metrics=metrics, loader=loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="grader", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # add_docs serves both pages from local files, not a CDN
                  openapi_url="/openapi.json" if settings.docs else None)
    app.state.settings = settings
    app.state.service = service
    app.state.metrics = metrics
    app.state.key_bytes = settings.key_bytes()
    install_error_handlers(app)
    app.include_router(grading.router)
    app.include_router(rubric_routes.router)
    app.include_router(health.router)
    if settings.docs:
        add_docs(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(ApiKeyMiddleware, keys=app.state.key_bytes)  # runs before the body is read
    app.add_middleware(AccessLogMiddleware, metrics=metrics)
    return app
