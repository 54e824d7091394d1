"""The HTTP grading service: a thin FastAPI layer over :class:`grader.engine.Grader`.

``create_app(settings)`` builds the app; ``grader serve`` runs it with uvicorn.
"""

from grader.api.app import create_app

__all__ = ["create_app"]
