"""Every setting of grader: one pydantic-settings class read from ``GRADER_*`` variables.

The HTTP service reads its settings once (:func:`get_settings`); the encoder's
settings (cache folder, BLAS threads, heap tuning) are read when they are used
(:func:`make_settings`), so a program may change them before it loads a model.
No other module reads the environment. Every field is documented in
``docs/settings.md``; a test fails when one is not.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from grader.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or name (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every setting of ``grader serve``; each reads ``GRADER_<NAME>`` from the environment."""

    model_config = SettingsConfigDict(env_prefix="GRADER_", extra="ignore", frozen=True)

    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), description="API keys accepted in the X-API-Key header, comma-separated.")
    open: bool = Field(default=False, description="Serve without API keys (allowed on a loopback host only).")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on (0 picks a free one).")
    rubrics_dir: Path = Field(default=Path("rubrics"), description="Folder of rubric YAML files, all loaded at startup.")
    model: str | None = Field(default=None, description="Embedding model: 'minilm', 'mpnet' or a local folder.")
    device: str | None = Field(default=None, description="'cpu', 'cuda' or 'cuda:N' (default: CUDA when present).")
    backend: Literal["auto", "fp32", "fp16", "int8", "torch"] = Field(
        default="auto", description="Encoder precision and runtime (auto: fp16 on CUDA; on a CPU int8 for minilm, "
                                    "fp32 for other models; 'torch': fp32 in plain torch).")
    combiner: str | None = Field(default=None, description="Combiner JSON, or a scorer folder from `grader train "
                                                            "--finetune` (default: the combiner shipped with grader).")
    review_threshold: float = Field(default=0.6, ge=0, le=1,
                                    description="Confidence below which an answer is flagged for review.")
    max_body_bytes: int = Field(default=1_000_000, gt=0, description="Largest request body; larger gets 413.")
    max_answer_chars: int = Field(default=10_000, gt=0, description="Longest answer; longer gets 422.")
    max_batch_size: int = Field(default=100, gt=0, description="Most items in one POST /v1/grade/batch.")
    batch_wait_ms: float = Field(default=2.0, ge=0,
                                 description="How long the micro-batcher collects concurrent requests.")
    batch_max_size: int = Field(default=32, gt=0, description="Most answers graded in one model call.")
    queue_max: int = Field(default=2_000, gt=0, description="Most answers waiting to be graded; more gets 503.")
    grade_timeout_s: float = Field(default=30.0, gt=0, description="Longest a request waits for its grade; then 503. "
                                   "Work the request still had queued is dropped.")
    max_question_chars: int = Field(default=20_000, gt=0, description="Most characters in one inline question "
                                    "(prompt, reference answers, key phrases, alternatives, hints, misconceptions); "
                                    "more gets 422.")
    max_key_phrases: int = Field(default=20, gt=0, description="Most key phrases, and most misconceptions, in one "
                                                               "inline question; more gets 422.")
    max_alternatives: int = Field(default=10, ge=0, description="Most alternatives of one key phrase or "
                                                                "misconception of an inline question; more gets 422.")
    max_request_chars: int = Field(default=200_000, gt=0, description="Most characters of answers and inline "
                                   "questions in one request, summed over a batch's items; more gets 413.")
    batch_max_chars: int = Field(default=2_000, gt=0, description="Most characters of answers and question texts "
                                 "encoded in one model call, so that a short request never waits long behind a "
                                 "large one (a single longer answer is graded alone).")
    body_timeout_s: float = Field(default=10.0, gt=0, description="Longest time to receive a request's body; a "
                                                                   "slower client gets 408.")
    inline_cache_bytes: int = Field(default=64_000_000, ge=0, description="Memory for prepared inline questions "
                                    "(estimated bytes of their vectors and texts); the least recently used beyond "
                                    "it are dropped.")
    feedback_level: Literal["student", "instructor", "none"] = Field(
        default="student", description="What a grade shows when neither the request nor the rubric says: 'student' "
                                       "(no key phrases or model-answer text), 'instructor' (everything) or 'none' "
                                       "(no feedback text or per-concept detail).")
    include_signals: bool = Field(default=True, description="Include the raw combiner signals in results.")
    docs: bool = Field(default=True, description="Serve the OpenAPI docs at /docs, /redoc and /openapi.json (assets under /static/docs).")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    cache_dir: Path | None = Field(default=None, description="Folder for assembled models and ONNX files "
                                                             "(default: ~/.cache/grader).")
    state_dir: Path | None = Field(default=None, description="Folder, outside the cache, for what this "
                                   "installation has verified: weight hashes and the key that seals built ONNX files "
                                   "(default: ~/.local/state/grader).")
    blas_threads: int = Field(default=1, ge=0, description="Threads numpy's BLAS may use for the grader's small "
                                                           "products (0: leave numpy's BLAS as it is).")
    malloc_tuning: bool = Field(default=True, description="On Linux with glibc, give the C heap's free memory back "
                                                         "to the system after large encoder batches.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value):
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @field_validator("cache_dir", "state_dir", mode="before")
    @classmethod
    def _blank_is_default(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value

    def key_bytes(self) -> list[bytes]:
        """The API keys as bytes, for constant-time comparison."""
        return [k.get_secret_value().encode("utf-8") for k in self.api_keys]

    def check_security(self) -> None:
        """Refuse to serve without keys unless open, and open only on a loopback host."""
        if self.open and not is_loopback(self.host):
            raise ConfigError(f"`open` (GRADER_OPEN) is allowed only on a loopback host such as 127.0.0.1. "
                              f"Got host '{self.host}'.", field="open")
        if not self.api_keys and not self.open:
            raise ConfigError("no API keys: set GRADER_API_KEYS (comma-separated) or set `open` to serve "
                              "without keys on a loopback host", field="api_keys")


def make_settings(**overrides) -> Settings:
    """Settings from the environment with ``overrides``; an invalid value raises ConfigError naming it."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        got = err.get("input")
        shown = "" if field == "api_keys" or isinstance(got, (dict, list)) else f" Got {got!r}."
        raise ConfigError(f"setting '{field}' (GRADER_{(field or '').upper()}): {err['msg']}.{shown}",
                          field=field) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; tests call ``get_settings.cache_clear()`` or pass their own."""
    return make_settings()
