"""POST /v1/grade and POST /v1/grade/batch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from grader.api import examples as ex
from grader.api.openapi import responses
from grader.api.errors import outcome_error
from grader.api.deps import ApiKey, AppSettings, Service
from grader.api.schemas import BatchItemOut, BatchRequest, BatchResponse, ErrorDetail, GradeRequest, GradeResponse
from grader.errors import GraderError

router = APIRouter(prefix="/v1", tags=["grading"])

GRADE_EXAMPLES = {
    "rubric": {"summary": "A question of a loaded rubric", "value": ex.GRADE_REQUEST},
    "inline": {"summary": "An inline short-answer question", "value": ex.INLINE_REQUEST},
}


def _error_detail(exc: BaseException) -> ErrorDetail:
    if isinstance(exc, GraderError):
        return ErrorDetail(**exc.to_dict()["error"])
    return ErrorDetail(code="internal_error", message="grading this item failed", field=None)


@router.post("/grade", response_model=GradeResponse, response_model_exclude_none=True,
             responses=responses(ex.GRADE_RESPONSE, 401, 404, 413, 422, 503),
             summary="Grade one answer")
async def grade(body: Annotated[GradeRequest, Body(openapi_examples=GRADE_EXAMPLES)], service: Service,
                settings: AppSettings, response: Response, _key: ApiKey) -> GradeResponse:
    """Grade one answer to a rubric question, or to an inline short-answer question.

    The response headers ``X-Batch-Id`` and ``X-Batch-Size`` name the model call the
    answer was graded in, together with concurrent requests.
    """
    service.require_ready()
    item = service.resolve(body)
    outcome = (await service.grade([item]))[0]
    batch = {"X-Batch-Id": str(outcome.batch_id), "X-Batch-Size": str(outcome.batch_size)}
    if isinstance(outcome.value, BaseException):
        if service.metrics is not None:
            service.metrics.answers.labels("failed").inc()
        return outcome_error(outcome.value, headers=batch)
    response.headers.update(batch)
    return GradeResponse.from_result(outcome.value, signals=settings.include_signals)


@router.post("/grade/batch", response_model=BatchResponse,
             responses=responses(ex.BATCH_RESPONSE, 401, 404, 413, 422, 503),
             summary="Grade many answers in one request")
async def grade_batch(body: BatchRequest, service: Service, settings: AppSettings, _key: ApiKey) -> BatchResponse:
    """Grade up to ``GRADER_MAX_BATCH_SIZE`` answers; results come back in request order.

    Every item is checked before any is graded (an unknown id or a too-long answer
    rejects the request, naming ``items[i].field``). An item whose grading fails
    gets its own ``error`` and never fails the others.
    """
    service.check_batch(len(body.items))
    service.require_ready()
    items = [service.resolve(item, f"items[{i}].") for i, item in enumerate(body.items)]
    outcomes = await service.grade(items)
    results = []
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome.value, BaseException):
            results.append(BatchItemOut(index=i, error=_error_detail(outcome.value)))
        else:
            results.append(BatchItemOut(index=i, result=GradeResponse.from_result(
                outcome.value, signals=settings.include_signals)))
    failed = sum(r.error is not None for r in results)
    if failed and service.metrics is not None:
        service.metrics.answers.labels("failed").inc(failed)
    return BatchResponse(results=results, graded=len(results) - failed, failed=failed)
