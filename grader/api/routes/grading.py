"""POST /v1/grade and POST /v1/grade/batch."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Response

from grader.api import examples as ex
from grader.api.openapi import responses
from grader.api.errors import grader_error_body, outcome_error
from grader.api.deps import ApiKey, AppSettings, Service
from grader.api.schemas import BatchItemOut, BatchRequest, BatchResponse, ErrorDetail, GradeRequest, GradeResponse
from grader.errors import GraderError

router = APIRouter(prefix="/v1", tags=["grading"])
SMALL_BATCH = 8  # a batch of more items has its response built in a worker thread

GRADE_EXAMPLES = {
    "rubric": {"summary": "A question of a loaded rubric", "value": ex.GRADE_REQUEST},
    "inline": {"summary": "An inline short-answer question", "value": ex.INLINE_REQUEST},
}


def _error_detail(exc: BaseException) -> ErrorDetail:
    if isinstance(exc, GraderError):
        return ErrorDetail(**grader_error_body(exc)["error"])
    return ErrorDetail(code="internal_error", message="grading this item failed", field=None)


@router.post("/grade", response_model=GradeResponse, response_model_exclude_none=True,
             responses=responses(ex.GRADE_RESPONSE, 401, 404, 408, 413, 422, 503),
             summary="Grade one answer")
async def grade(body: Annotated[GradeRequest, Body(openapi_examples=GRADE_EXAMPLES)], service: Service,
                settings: AppSettings, response: Response, _key: ApiKey) -> GradeResponse:
    """Grade one answer to a rubric question, or to an inline short-answer question.

    The response headers ``X-Batch-Id`` and ``X-Batch-Size`` name the model call the
    answer was graded in, together with concurrent requests. ``feedback_level`` chooses
    what the grade shows (default ``GRADER_FEEDBACK_LEVEL``, ``student``).
    """
    service.check_request_chars(service.request_chars(body))
    service.require_ready()
    item = service.resolve(body)
    outcome = (await service.grade([item]))[0]
    batch = {"X-Batch-Id": str(outcome.batch_id), "X-Batch-Size": str(outcome.batch_size)}
    if isinstance(outcome.value, BaseException):
        if service.metrics is not None:
            service.metrics.answers.labels("failed").inc()
        return outcome_error(outcome.value, headers=batch)
    response.headers.update(batch)
    level = service.feedback_level(body.feedback_level, item[1], service.rubrics.get(body.rubric_id or ""))
    return GradeResponse.from_result(outcome.value, signals=settings.include_signals, level=level, question=item[1])


@router.post("/grade/batch", response_model=BatchResponse,
             responses=responses(ex.BATCH_RESPONSE, 401, 408, 413, 422, 503),
             summary="Grade many answers in one request")
async def grade_batch(body: BatchRequest, service: Service, settings: AppSettings, _key: ApiKey) -> Response:
    """Grade up to ``GRADER_MAX_BATCH_SIZE`` answers; results come back in request order.

    The whole request is refused only when it is over a request limit (items, characters).
    An item that cannot be graded (an unknown id, a too-long answer, an inline question over
    a limit) or whose grading fails gets its own ``error``, naming ``items[i].field``, and
    never fails the others.
    """
    service.check_batch(len(body.items))
    service.check_request_chars(sum(service.request_chars(item) for item in body.items), "items")
    service.require_ready()
    resolved: dict[int, tuple] = {}
    errors: dict[int, BaseException] = {}
    for i, item in enumerate(body.items):
        try:
            resolved[i] = service.resolve(item, f"items[{i}].")
        except GraderError as exc:
            errors[i] = exc
    outcomes = dict(zip(resolved, await service.grade(list(resolved.values())))) if resolved else {}

    def body_json() -> bytes:
        results = []
        for i, item in enumerate(body.items):
            value = errors[i] if i in errors else outcomes[i].value
            if isinstance(value, BaseException):
                results.append(BatchItemOut(index=i, error=_error_detail(value)))
                continue
            question = resolved[i][1]
            level = service.feedback_level(item.feedback_level or body.feedback_level, question,
                                           service.rubrics.get(item.rubric_id or ""))
            results.append(BatchItemOut(index=i, result=GradeResponse.from_result(
                value, signals=settings.include_signals, level=level, question=question)))
        failed = sum(r.error is not None for r in results)
        if failed and service.metrics is not None:
            service.metrics.answers.labels("failed").inc(failed)
        return BatchResponse(results=results, graded=len(results) - failed, failed=failed).model_dump_json().encode()

    # A large batch's body is built off the event loop, so that other requests are served meanwhile;
    # it is a BatchResponse already, so FastAPI need not validate it again.
    content = await asyncio.to_thread(body_json) if len(body.items) > SMALL_BATCH else body_json()
    return Response(content, media_type="application/json")
