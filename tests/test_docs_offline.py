"""/docs and /redoc render in a real browser with no network beyond the service itself.

The service runs over loopback (as in test_api_lifecycle.py) and headless Chromium opens
both pages with every request to another host aborted and recorded: each page must
render the API (title and an operation), ask nothing of any other host, and log no
console error. The browser is Debian's ``chromium`` driven by the pip ``playwright``
package; without it the test is skipped on a developer's machine and fails under CI.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser import CHROMIUM, FLAGS, TIMEOUT_MS, sync_playwright_or_skip

from tests.conftest import RUBRIC

KEY = "docs-offline-key-7"


@pytest.fixture(scope="module")
def server(embedder):
    """The service on a free loopback port, with an API key required on /v1."""
    from grader.api import create_app
    from grader.api.server import ServerThread
    from grader.settings import Settings

    app = create_app(Settings(api_keys=KEY, rubrics_dir=RUBRIC.parent), loader=lambda: embedder)
    with ServerThread(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def spec(server) -> dict:
    """The OpenAPI schema the pages render; like the pages, it needs no API key."""
    r = httpx.get(server.url + "/openapi.json")
    assert r.status_code == 200
    return r.json()


@pytest.fixture
def browser(server, tmp_path):
    """A page in a fresh Chromium profile, and what it asked of other hosts and logged as errors."""
    sync_playwright = sync_playwright_or_skip()
    own = urlsplit(server.url).netloc
    foreign: list[str] = []
    errors: list[str] = []

    def guard(route):
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == own:
            route.continue_()
        else:
            route.abort()

    def record(request):
        url = request.url
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != own:
            foreign.append(url)

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                        headless=True, args=FLAGS)
        try:
            context.on("request", record)
            context.route("**/*", guard)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, foreign, errors
        finally:
            context.close()


def test_docs_pages_need_no_api_key_while_v1_does(server):
    for path in ("/docs", "/redoc", "/openapi.json", "/static/docs/swagger-ui-bundle.js"):
        assert httpx.get(server.url + path).status_code == 200, path
    assert httpx.get(server.url + "/v1/rubrics").status_code == 401


def test_swagger_ui_renders_from_local_files_only(server, spec, browser):
    page, foreign, errors = browser
    page.goto(server.url + "/docs")
    title = page.wait_for_selector(".swagger-ui .info .title")
    assert spec["info"]["title"] in title.inner_text()
    page.wait_for_selector('.opblock-summary-path[data-path="/v1/grade"]')
    assert foreign == []
    assert errors == []


def test_redoc_renders_from_local_files_only(server, spec, browser):
    page, foreign, errors = browser
    page.goto(server.url + "/redoc")
    title = page.wait_for_selector(".api-info h1")
    assert spec["info"]["title"] in title.inner_text()
    summary = spec["paths"]["/v1/grade"]["post"]["summary"]
    page.locator("h2", has_text=summary).first.wait_for()
    page.get_by_text("/v1/grade", exact=True).first.wait_for()
    assert foreign == []
    assert errors == []
