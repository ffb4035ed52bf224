"""The executions page at /ui/ (`EXECUTION_STREAM_API_UI`): static files shipped in the package.

The page calls only the public API, with the bearer token its user gives it; the server adds nothing
but the files and headers that keep the token on the page (no framing, no inline script, no referrer).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

UI_PATH = "/ui/"
_FILES = {
    "": ("index.html", "text/html"),
    "app.js": ("app.js", "text/javascript"),
    "app.css": ("app.css", "text/css"),
}
_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src *; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    hdrs.CACHE_CONTROL: "no-cache",
    "Content-Security-Policy": _CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def add_ui_routes(app: web.Application) -> None:
    folder = resources.files(__package__) / "ui"
    app.router.add_get(UI_PATH.rstrip("/"), _to_folder)
    for path, (name, content_type) in _FILES.items():
        body = (folder / name).read_bytes()
        app.router.add_get(f"{UI_PATH}{path}", _serving(body, content_type))


async def _to_folder(request: web.Request) -> web.Response:
    # Relative, so that a proxy's path prefix is kept; the page's own links are relative to /ui/.
    return web.Response(status=302, headers={hdrs.LOCATION: "ui/"})


def _serving(body: bytes, content_type: str) -> Handler:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=_HEADERS)

    return serve
