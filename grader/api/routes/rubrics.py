"""GET /v1/rubrics, GET /v1/rubrics/{rubric_id} and POST /v1/rubrics/{rubric_id}/attempts."""

from __future__ import annotations

import math

from fastapi import APIRouter

from grader.api import examples as ex
from grader.api.openapi import responses
from grader.api.errors import clip, outcome_error
from grader.api.deps import ApiKey, AppSettings, Service
from grader.api.schemas import AttemptRequest, AttemptResponse, GradeResponse, RubricDetail, RubricList, RubricSummary
from grader.errors import GraderError, InputDataError

router = APIRouter(prefix="/v1/rubrics", tags=["rubrics"])


@router.get("", response_model=RubricList, responses=responses(ex.RUBRIC_LIST, 401),
            summary="List the loaded rubrics")
async def list_rubrics(service: Service, _key: ApiKey) -> RubricList:
    """Every loaded rubric: id, title, language, number of questions and total points."""
    return RubricList(rubrics=[RubricSummary.from_rubric(r) for _, r in sorted(service.rubrics.items())])


@router.get("/{rubric_id}", response_model=RubricDetail, responses=responses(ex.RUBRIC_DETAIL, 401, 404),
            summary="Read one rubric's questions")
async def read_rubric(rubric_id: str, service: Service, _key: ApiKey) -> RubricDetail:
    """The rubric's questions, options and points; never the answer key, reference answers or key phrases."""
    return RubricDetail.from_rubric(service.rubric(rubric_id))


@router.post("/{rubric_id}/attempts", response_model=AttemptResponse, response_model_exclude_none=True,
             responses=responses(ex.ATTEMPT_RESPONSE, 401, 404, 408, 413, 422, 503),
             summary="Grade a whole quiz attempt")
async def grade_attempt(rubric_id: str, body: AttemptRequest, service: Service, settings: AppSettings,
                        _key: ApiKey) -> AttemptResponse:
    """Grade every question of the rubric (multiple choice, true/false, short answer) and total the points.

    A question without an answer scores 0 with an ``empty`` flag; an answer to a
    question the rubric does not have is rejected, naming ``answers.<id>``.
    """
    rubric = service.rubric(rubric_id)
    known = {q.id for q in rubric.questions}
    unknown = [qid for qid in body.answers if qid not in known]
    if unknown:
        named = ", ".join(f"'{clip(qid, 60)}'" for qid in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
        raise InputDataError(f"answers name {len(unknown)} question(s) that rubric '{rubric.id}' does not have "
                             f"({named}). Valid ids: {', '.join(q.id for q in rubric.questions)}.",
                             field=f"answers.{unknown[0]}")
    for qid, answer in body.answers.items():
        service.check_answer(answer, f"answers.{qid}")
    service.check_request_chars(sum(len(a) for a in body.answers.values()), "answers")
    service.require_ready()
    grader = service.graders[rubric.id]
    items = [(grader, q, body.answers.get(q.id, "")) for q in rubric.questions]
    outcomes = await service.grade(items)
    results = []
    for q, outcome in zip(rubric.questions, outcomes):
        if isinstance(outcome.value, BaseException):  # an attempt is one grade: a failed item fails it
            error = outcome.value
            return outcome_error(error.with_field(f"answers.{q.id}") if isinstance(error, GraderError) else error)
        level = service.feedback_level(body.feedback_level, q, rubric)
        results.append(GradeResponse.from_result(outcome.value, signals=settings.include_signals, level=level,
                                                 question=q))
    return AttemptResponse(
        rubric_id=rubric.id, attempt_id=body.attempt_id,
        points=round(math.fsum(r.points for r in results), 6), max_points=rubric.max_points,
        answered=sum(1 for q in rubric.questions if body.answers.get(q.id, "").strip()),
        needs_review=any(r.needs_review for r in results), results=results)
