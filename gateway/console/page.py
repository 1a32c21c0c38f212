"""`/console` and its assets, shipped in the package (`static/`) and read once when the
app is built: plain HTML, CSS and JavaScript, no build step.

The page holds no secret. It asks for an admin identity's token, keeps it in the
tab's sessionStorage and sends it as a bearer token to the admin API, which decides
every action by the identity's roles. The Content-Security-Policy allows only this
origin's own script and style files: no inline script, no other origin."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from gateway.errors import ApiError

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
ASSETS = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def add_console_routes(app: web.Application) -> None:
    folder = resources.files("gateway.console") / "static"
    files = {name: (folder / name).read_bytes() for name in ASSETS}

    async def page(request: web.Request) -> web.Response:
        return _answer(files, "index.html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["asset"]
        if name not in files or name == "index.html":
            raise ApiError(404, f"No console asset '{name[:60]}'.", code="not_found")
        return _answer(files, name)

    app.router.add_get("/console", page)
    app.router.add_get("/console/", page)
    app.router.add_get("/console/{asset}", asset)


def _answer(files: dict[str, bytes], name: str) -> web.Response:
    return web.Response(
        body=files[name], content_type=ASSETS[name], charset="utf-8", headers=HEADERS
    )
