"""Dependencies of the routes, as ``Annotated[..., Depends(...)]`` aliases."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from grader.api.service import GradingService
from grader.errors import AuthenticationError
from grader.settings import Settings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="One of the keys in GRADER_API_KEYS.")


def get_service(request: Request) -> GradingService:
    """The app's :class:`GradingService`."""
    return request.app.state.service


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


def key_matches(given: bytes, keys: list[bytes]) -> bool:
    """Whether ``given`` equals one of ``keys``, compared in constant time against every key."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key)
    return found


def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> str | None:
    """401 unless X-API-Key holds a configured key; returns a short fingerprint for logs (None when open).

    :class:`~grader.api.middleware.ApiKeyMiddleware` checks the key before the body is read and
    leaves its fingerprint in the request state; this check stands in when the app runs without it.
    """
    keys: list[bytes] = request.app.state.key_bytes
    if not keys:
        return None  # open mode: allowed only on loopback, checked at startup
    checked = getattr(request.state, "key_id", None)
    if checked is not None:
        return checked
    if not key:
        raise AuthenticationError("missing API key: send one of the configured keys in the X-API-Key header",
                                  field="X-API-Key")
    given = key.encode("utf-8", "surrogateescape")
    if not key_matches(given, keys):
        raise AuthenticationError("wrong API key in the X-API-Key header", field="X-API-Key")
    fingerprint = hashlib.sha256(given).hexdigest()[:8]
    request.state.key_id = fingerprint
    return fingerprint


Service = Annotated[GradingService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
ApiKey = Annotated[str | None, Depends(require_api_key)]
