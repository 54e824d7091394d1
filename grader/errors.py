"""The one exception hierarchy of grader.

Every error a user can cause is a :class:`GraderError`. The CLI turns it into a
one-line message and an exit status; the HTTP service turns it into the JSON
error body ``{"error": {"code", "message", "field"}}``. Both read the same
attributes, so both say the same thing.
"""

from __future__ import annotations


class GraderError(Exception):
    """Base class of every error grader raises on purpose.

    ``code`` is a stable machine-readable name, ``field`` names the offending
    field (a rubric path, a CSV column, a request field) when there is one, and
    ``exit_code`` is what the CLI exits with.
    """

    code = "grader_error"
    exit_code = 1
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        self.message = message
        self.field = field
        self.source = source
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.message}"

    def with_field(self, field: str | None) -> "GraderError":
        """A new error of the same kind and message that names ``field``; this one is left as raised."""
        return type(self)(self.message, field=field, source=self.source)

    def to_dict(self) -> dict:
        """The JSON error body shared by the CLI's --json output and the API."""
        return {"error": {"code": self.code, "message": str(self), "field": self.field}}


class RubricError(GraderError):
    """A rubric file is missing, unreadable or invalid."""

    code = "invalid_rubric"
    exit_code = 2
    http_status = 422


class UnknownQuestionError(GraderError):
    """A question id is not in the rubric."""

    code = "unknown_question"
    exit_code = 2
    http_status = 404


class InputDataError(GraderError):
    """A submissions or labelled-data file cannot be read as asked."""

    code = "invalid_input"
    exit_code = 2
    http_status = 422


class ModelError(GraderError):
    """An embedding model or a combiner cannot be found, verified or loaded."""

    code = "model_error"
    exit_code = 3
    http_status = 500


class ModelIntegrityError(ModelError):
    """A weight file's sha256 does not match the pinned value."""

    code = "model_integrity"


class ConfigError(GraderError):
    """A setting or command-line option has an invalid value."""

    code = "invalid_config"
    exit_code = 2
    http_status = 422


class UnknownRubricError(GraderError):
    """A rubric id is not among the rubrics the service loaded."""

    code = "unknown_rubric"
    exit_code = 2
    http_status = 404


class AuthenticationError(GraderError):
    """An HTTP request has no API key or a wrong one."""

    code = "unauthorized"
    http_status = 401


class LimitError(GraderError):
    """A request exceeds a configured limit (answer length, batch size)."""

    code = "limit_exceeded"
    exit_code = 2
    http_status = 422


class PayloadTooLargeError(LimitError):
    """A request body exceeds the configured number of bytes."""

    code = "payload_too_large"
    http_status = 413


class ServiceUnavailableError(GraderError):
    """The service cannot grade now: the model is not loaded yet, or the queue is full."""

    code = "unavailable"
    http_status = 503
