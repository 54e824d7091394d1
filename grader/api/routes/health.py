"""GET /healthz, /readyz and /metrics: open to probes and scrapers, no API key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from grader.api import examples as ex
from grader.api.openapi import responses
from grader.api.deps import Service
from grader.api.schemas import Health, Readiness

router = APIRouter(tags=["health"])

_METRICS_EXAMPLE = "# HELP grader_batch_size Answers graded per model call.\n# TYPE grader_batch_size histogram\n..."


@router.get("/healthz", response_model=Health, responses=responses({"status": "ok"}),
            summary="The process is up")
async def healthz() -> Health:
    """Answers as soon as the process serves HTTP, before the model is loaded."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness,
            responses={**responses(ex.READY),
                       503: {"description": "model not loaded yet (or failed to load)",
                             "content": {"application/json": {"example": {"status": "loading", "model": None,
                                                                          "rubrics": 1}}}}},
            summary="The model is loaded")
async def readyz(service: Service):
    """200 once the model is loaded and warmed up; 503 while loading or after a failed load."""
    body = Readiness(status=service.state, model=service.model_info() if service.ready else None,
                     rubrics=len(service.rubrics))
    return JSONResponse(body.model_dump(), status_code=200 if service.ready else 503)


@router.get("/metrics", response_class=Response, responses=responses(_METRICS_EXAMPLE, media=CONTENT_TYPE_LATEST),
            summary="Prometheus metrics")
async def metrics(service: Service) -> Response:
    """Requests, latency, errors, batch sizes and queue depth in the Prometheus text format."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
