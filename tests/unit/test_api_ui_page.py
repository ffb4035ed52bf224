"""The executions page at /ui/: served only when EXECUTION_STREAM_API_UI is on, as the files in the
package, with headers that keep its token on the page; never in the OpenAPI document."""

from __future__ import annotations

import re
from importlib import resources

from execution_stream.api.app import build_api
from execution_stream.api.openapi import openapi_document
from tests.support.api import hs256_settings, running_api
from tests.support.fake_store import FakeStore

UI_FILES = resources.files("execution_stream.api") / "ui"


async def test_the_page_is_not_served_by_default() -> None:
    async with running_api(FakeStore(), hs256_settings()) as client, client.get("/ui/") as response:
        assert response.status == 404


async def test_the_page_and_every_file_it_names_are_served_from_the_package() -> None:
    async with running_api(FakeStore(), hs256_settings(api_ui=True)) as client:
        async with client.get("/ui", allow_redirects=False) as redirect:
            assert (redirect.status, redirect.headers["Location"]) == (302, "ui/")
        async with client.get("/ui/") as page:
            html = await page.text()
            assert page.content_type == "text/html"
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["Referrer-Policy"] == "no-referrer"
        assert html == (UI_FILES / "index.html").read_text()
        named = [n for n in re.findall(r'(?:src|href)="([^"]+)"', html) if not n.startswith("data:")]
        assert sorted(named) == ["app.css", "app.js"], "the page names only its own files, relatively"
        for name, content_type in (("app.js", "text/javascript"), ("app.css", "text/css")):
            async with client.get(f"/ui/{name}") as response:
                assert (response.status, response.content_type) == (200, content_type)
                assert await response.read() == (UI_FILES / name).read_bytes()


def test_the_page_is_all_the_api_serves_beyond_its_document() -> None:
    app = build_api(hs256_settings(api_ui=True), FakeStore())
    served = {
        route.resource.canonical
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert served - set(openapi_document()["paths"]) == {"/ui", "/ui/", "/ui/app.js", "/ui/app.css"}
