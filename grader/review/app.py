"""The review web app: server-rendered pages, a little plain JavaScript, every asset served from the package.

``create_review_app(workspace, settings)`` builds it; ``grader review`` runs it. The key
rules are those of ``grader serve``: without API keys it serves only a loopback host (and
answers only requests addressed to one, so a page elsewhere cannot reach it through DNS
rebinding); with keys, a request carries one in the X-API-Key header or in the cookie the
login page sets. Actions are JSON POSTs, which a page of another site cannot send
without the browser asking this server first.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from grader.api.deps import key_matches
from grader.api.errors import install_error_handlers
from grader.api.middleware import BodyLimitMiddleware
from grader.errors import AuthenticationError, GraderError
from grader.files.exports import FORMATS
from grader.files.report import PAGE_CSS, histogram_svg
from grader.review.store import Action
from grader.review.workspace import Workspace
from grader.settings import Settings, is_loopback

HERE = Path(__file__).resolve().parent
COOKIE = "grader_review_key"
EXPORT_NAMES = {"csv": "final.csv", "moodle": "moodle.csv", "canvas": "canvas.csv", "feedback": "feedback.zip"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviewer: str = Field(min_length=1, max_length=80, description="Who acts; recorded with the action.")


class AnswerRef(BaseModel):
    """An answer and the version of it the reviewer saw."""

    model_config = ConfigDict(extra="forbid")

    row: int = Field(ge=1)
    version: int = Field(ge=0)


class AcceptBody(_Body):
    answers: list[AnswerRef] = Field(min_length=1, max_length=100_000)


class PointsBody(AcceptBody):
    points: float


class ConceptBody(_Body):
    answer: AnswerRef
    concept: str
    stated: bool | None


class CommentBody(_Body):
    answer: AnswerRef
    comment: str = Field(max_length=5000)


def _guard(request: Request) -> None:
    """The key rules of ``grader serve``, for pages (a login redirect) and actions (JSON errors)."""
    keys: list[bytes] = request.app.state.key_bytes
    if request.method == "POST" and request.url.path.startswith("/api/"):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise GraderError("actions must be sent as JSON (Content-Type: application/json)", field="Content-Type")
    if not keys:
        if not is_loopback(request.url.hostname or ""):
            raise AuthenticationError("this review serves requests addressed to a loopback host only; open it at "
                                      "http://127.0.0.1", field="Host")
        return
    given = request.headers.get("x-api-key") or request.cookies.get(COOKIE) or ""
    if given and key_matches(given.encode("utf-8", "surrogateescape"), keys):
        return
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        raise _LoginNeeded()
    raise AuthenticationError("missing or wrong API key: log in at /login or send the X-API-Key header",
                              field="X-API-Key")


class _LoginNeeded(Exception):
    pass


Guard = Annotated[None, Depends(_guard)]


def _done(action: Action | None, message: str) -> dict:
    if action is None:
        return {"action": None, "changed": [], "message": message}
    return {"action": action.id, "changed": action.changed, "skipped": action.skipped, "message": message}


def create_review_app(workspace: Workspace, settings: Settings, reviewer: str = "instructor") -> FastAPI:
    """The review app of ``workspace``; ``settings`` give the key rules and the body limit.

    ``reviewer`` is the name a new browser starts with (each page lets the reviewer change it).
    """
    settings.check_security()
    app = FastAPI(title="grader review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.workspace = settings, workspace
    app.state.key_bytes = settings.key_bytes()
    install_error_handlers(app)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["audit_value"] = audit_value
    w = workspace
    title = w.rubric.title or w.rubric.id

    @app.exception_handler(_LoginNeeded)
    async def _login(request: Request, exc: _LoginNeeded):
        return RedirectResponse("/login", status_code=303)

    def page(request: Request, name: str, **context) -> HTMLResponse:
        context.setdefault("current", None)
        context.update(title=title, graded=w.graded.name, progress=w.progress(), reviewer=reviewer,
                       questions=list(w.questions.values()), formats=EXPORT_NAMES)
        return templates.TemplateResponse(request, name, context)

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"status": "ok"}

    @app.get("/static/page.css", include_in_schema=False)
    def page_css():
        return Response(PAGE_CSS, media_type="text/css")

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request):
        return templates.TemplateResponse(request, "login.html", {"title": title, "error": ""})

    @app.post("/login")
    async def login(request: Request):
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (fields.get("key") or [""])[0]
        keys = request.app.state.key_bytes
        if keys and key_matches(key.encode("utf-8", "surrogateescape"), keys):
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, key, httponly=True, samesite="strict")
            return response
        return templates.TemplateResponse(request, "login.html", {"title": title, "error": "wrong key"},
                                          status_code=401)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, _: Guard):
        return page(request, "index.html", histogram=histogram_svg(w.totals(), w.rubric.max_points))

    @app.get("/q/{question_id}", response_class=HTMLResponse)
    def question(request: Request, question_id: str, _: Guard):
        view = w.view(question_id)
        names = tag_names(view.question)

        def titled(segment) -> str:
            tags = [f"C{n}" for n in segment.concepts] + [f"M{n}" for n in segment.misconceptions]
            return "; ".join(f"{t}: {names.get(t, '')}" for t in tags)

        return page(request, "question.html", view=view, current=question_id, tag_names=names, view_tags=titled)

    @app.get("/history", response_class=HTMLResponse)
    def history(request: Request, _: Guard):
        return page(request, "history.html", entries=w.store.history())

    @app.get("/export/{fmt}")
    def download(fmt: str, _: Guard):
        if fmt not in FORMATS:
            raise GraderError(f"`format` must be one of {', '.join(FORMATS)}. Got {fmt!r}.", field="format")
        stem = w.graded.name.removesuffix(".csv")
        name = f"{stem}.{EXPORT_NAMES[fmt]}"
        with tempfile.TemporaryDirectory() as tmp:
            out = w.export(fmt, Path(tmp) / ("feedback" if fmt == "feedback" else name))
            if fmt == "feedback":
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                    for path in sorted(out.iterdir()):
                        zf.write(path, f"{stem}.feedback/{path.name}")
                data, media = buf.getvalue(), "application/zip"
            else:
                data, media = out.read_bytes(), "text/csv; charset=utf-8"
        return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/api/q/{question_id}/accept")
    def accept(question_id: str, body: AcceptBody, _: Guard):
        action = w.accept(body.reviewer, question_id, {a.row: a.version for a in body.answers})
        return _done(action, f"Accepted {len(action.changed)} answer(s).")

    @app.post("/api/q/{question_id}/points")
    def points(question_id: str, body: PointsBody, _: Guard):
        action = w.set_points(body.reviewer, question_id, {a.row: a.version for a in body.answers}, body.points)
        return _done(action, f"Gave {body.points:g} points to {len(action.changed)} answer(s).")

    @app.post("/api/q/{question_id}/concept")
    def concept(question_id: str, body: ConceptBody, _: Guard):
        action = w.mark_concept(body.reviewer, question_id, body.answer.row, body.answer.version, body.concept,
                                body.stated)
        word = {True: "stated", False: "not stated", None: "unmarked"}[body.stated]
        return _done(action, f"Marked '{body.concept}' as {word}.")

    @app.post("/api/q/{question_id}/comment")
    def comment(question_id: str, body: CommentBody, _: Guard):
        action = w.comment(body.reviewer, question_id, body.answer.row, body.answer.version, body.comment)
        return _done(action, "Comment saved.")

    @app.post("/api/q/{question_id}/regrade")
    def regrade(question_id: str, body: _Body, _: Guard):
        action = w.regrade(body.reviewer, question_id)
        d = action.detail
        return _done(action, f"Regraded {d['regraded']} answer(s) with {d['examples']} graded example(s) and "
                             f"{d['phrasings']} concept phrasing(s): {len(action.changed)} changed.")

    @app.post("/api/undo")
    def undo(body: _Body, _: Guard):
        action = w.undo(body.reviewer)
        if action is None:
            return _done(None, f"{body.reviewer} has nothing to undo.")
        return _done(action, f"Undid your {action.detail['kind']} ({len(action.changed)} answer(s)).")

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")  # after /static/page.css
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def audit_value(value: str | None) -> str:
    """An audit trail value (JSON) as a short text: a regrade shows its points and label."""
    if value is None:
        return "—"
    data = json.loads(value)
    if isinstance(data, dict) and "points" in data and "label" in data:
        return f"{data['points']} ({data['label']})"
    if isinstance(data, dict):
        return "; ".join(f"{k}: {'stated' if v else 'not stated'}" for k, v in data.items()) or "—"
    return f"{data:g}" if isinstance(data, float) else str(data)


def tag_names(question) -> dict[str, str]:
    """"C1" -> the first concept's text, "M1" -> the first misconception's, for the highlights' titles."""
    names = {f"C{i}": k.text for i, k in enumerate(getattr(question, "key_phrases", ()), 1)}
    names.update({f"M{i}": m.text for i, m in enumerate(getattr(question, "misconceptions", ()), 1)})
    return names
