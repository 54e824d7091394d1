"""``grader serve``: the HTTP grading service (FastAPI under uvicorn)."""

from __future__ import annotations

import sys

from grader.cli.common import add_model_options


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve the HTTP grading API",
                       description="Serve the HTTP grading API. Every option also reads a GRADER_* environment "
                                   "variable (see docs/settings.md); options win over the environment.")
    p.add_argument("--rubrics", default=None, metavar="DIR",
                   help="folder of rubric YAML files, all validated at startup (GRADER_RUBRICS_DIR, default rubrics/)")
    p.add_argument("--host", default=None, help="address to listen on (GRADER_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (GRADER_PORT, default 8000)")
    p.add_argument("--open", action="store_true", default=None,
                   help="serve without API keys; allowed only on a loopback host (GRADER_OPEN)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                   help="log level (GRADER_LOG_LEVEL, default info)")
    add_model_options(p)
    p.set_defaults(run=run, backend=None)


def run(args) -> int:
    import logging

    import uvicorn

    from grader.api import create_app
    from grader.api.server import uvicorn_options
    from grader.rubric import load_rubric_dir
    from grader.settings import make_settings

    settings = make_settings(rubrics_dir=args.rubrics, host=args.host, port=args.port, open=args.open,
                             log_level=args.log_level, model=args.model, device=args.device, backend=args.backend,
                             combiner=args.combiner)
    settings.check_security()  # before anything is loaded: no keys and no --open, or --open off loopback
    rubrics = load_rubric_dir(settings.rubrics_dir)  # an invalid rubric stops startup here, naming the file
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for rubric in rubrics.values():
        print(f"grader serve: rubric '{rubric.id}' ({len(rubric.questions)} questions) from {rubric.source}",
              file=sys.stderr)
    if settings.open and not settings.api_keys:
        print("grader serve: warning: --open: no API key is required (loopback only)", file=sys.stderr)
    app = create_app(settings, rubrics=rubrics)
    print(f"grader serve: listening on http://{settings.host}:{settings.port} (docs at /docs); "
          "the model loads in the background, GET /readyz says when it is ready", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
                **uvicorn_options(settings))
    return 0
