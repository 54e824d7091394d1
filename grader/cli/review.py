"""``grader review``: check, correct and export a graded CSV in the browser."""

from __future__ import annotations

import getpass
import sys

from grader.cli.common import add_model_options, make_grader

DEFAULT_PORT = 8001


def add_parser(sub) -> None:
    p = sub.add_parser("review", help="check, correct and export grades in the browser",
                       description="Serve the review app for GRADED (a CSV written by `grader grade`) at "
                                   "http://HOST:PORT. Every action is saved at once to GRADED.review.sqlite beside "
                                   "the file, so reopening it resumes the review. Without GRADER_API_KEYS the app "
                                   "serves a loopback host only; with keys, the browser logs in with one.")
    p.add_argument("graded", metavar="GRADED.csv", help="graded CSV written by `grader grade`")
    p.add_argument("--rubric", required=True, help="the rubric the file was graded with")
    add_serving_options(p)
    add_model_options(p)
    p.set_defaults(run=run)


def add_serving_options(parser) -> None:
    """--host, --port, --reviewer and --no-browser, shared with ``grader grade --review``."""
    group = parser.add_argument_group("review app")
    group.add_argument("--host", default=None, help="address to listen on (GRADER_HOST, default 127.0.0.1)")
    group.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default: {DEFAULT_PORT})")
    group.add_argument("--reviewer", default=None,
                       help="name recorded with your actions (default: your login name; the page can change it)")
    group.add_argument("--no-browser", action="store_true",
                       help="do not open a browser tab (none is opened when output is not a terminal)")


def serve(graded, rubric, grader, host: str | None = None, port: int = DEFAULT_PORT, reviewer: str | None = None,
          browser: bool = True) -> int:
    """Serve the review of ``graded`` until interrupted; a browser tab opens when output is a terminal."""
    import uvicorn

    from grader.review import Workspace, create_review_app
    from grader.settings import is_loopback, make_settings

    settings = make_settings(host=host, port=port)
    if not settings.api_keys and is_loopback(settings.host):
        settings = settings.model_copy(update={"open": True})  # open on loopback, as `grader serve --open`
    settings.check_security()  # keys required off loopback, before anything is loaded
    workspace = Workspace(graded, rubric, grader=grader)
    reviewer = reviewer or _login_name()
    app = create_review_app(workspace, settings, reviewer=reviewer)
    url = f"http://{'[' + settings.host + ']' if ':' in settings.host else settings.host}:{settings.port}/"
    done = sum(d for d, _ in workspace.progress().values())
    total = sum(t for _, t in workspace.progress().values())
    print(f"grader review: {graded}: {done} of {total} answers reviewed; actions are saved to "
          f"{workspace.store.path}\ngrader review: open {url} (Ctrl+C stops the server; nothing saved is lost)",
          file=sys.stderr)
    if browser and sys.stdout.isatty():
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, (url,)).start()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                    server_header=False)
    finally:
        workspace.close()
    return 0


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container without one): a plain default
        return "instructor"


def run(args) -> int:
    from grader.rubric import load_rubric

    rubric = load_rubric(args.rubric)
    return serve(args.graded, rubric, make_grader(args, rubric), args.host, args.port, args.reviewer,
                 not args.no_browser)
