"""The API docs pages: /docs (Swagger UI) and /redoc (ReDoc), from files installed with grader, never a CDN.

FastAPI's own pages load their JavaScript and CSS from a CDN, so offline they render
blank. The same pages here load the bundles that the ``fastapi-offline`` package ships
(Swagger UI 5, ReDoc 2) at ``/static/docs/<name>``: a route per file rather than a mount,
so the access log and metrics name the route like any other. ReDoc's side menu shows
Redocly's logo from their CDN; the ReDoc bundle is served with that one address replaced
by an empty inline image, so no page makes a request beyond this server. Like
``/openapi.json``, the pages need no API key: they describe the API and hold no data.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from grader.errors import ConfigError

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
STATIC_URL = "/static/docs"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
REDOCLY_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"


def static_dir() -> Path:
    """The folder holding the Swagger UI and ReDoc bundles (:data:`ASSETS`)."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc for ``app``'s OpenAPI schema, from the local bundles."""
    folder = static_dir()
    missing = [name for name in ASSETS if not (folder / name).is_file()]
    if missing:  # a broken install: say so at startup, not as a blank page
        raise ConfigError(f"the API docs files {', '.join(missing)} are missing from {folder}; reinstall "
                          "fastapi-offline (see grader's dependencies) or turn the docs off with GRADER_DOCS=false",
                          field="docs")

    redoc_js = (folder / "redoc.standalone.js").read_bytes().replace(REDOCLY_LOGO, EMPTY_IMAGE)

    @app.get(STATIC_URL + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404)
        if name == "redoc.standalone.js":
            return Response(redoc_js, media_type="text/javascript; charset=utf-8")
        return FileResponse(folder / name)

    def root(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base, redirect = root(request), app.swagger_ui_oauth2_redirect_url
        return get_swagger_ui_html(
            openapi_url=base + app.openapi_url, title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=base + redirect if redirect else None,
            swagger_js_url=f"{base}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{base}{STATIC_URL}/favicon.png", swagger_ui_parameters=app.swagger_ui_parameters)

    if app.swagger_ui_oauth2_redirect_url:
        @app.get(app.swagger_ui_oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(openapi_url=base + app.openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{base}{STATIC_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{base}{STATIC_URL}/favicon.png", with_google_fonts=False)
