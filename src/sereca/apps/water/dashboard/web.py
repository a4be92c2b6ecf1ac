"""The dashboard's HTTP routes: the page and its JSON API (the bridge is the runtime's).

The page and its static files are public; ``/api/*`` and the bridge need
the dashboard token (``Authorization: Bearer T`` or ``?token=T``), which
the page takes from its own URL (``/?token=T``, as the demo prints it).
plotly.js is served from the ``plotly`` wheel: no CDN, works offline.
"""

from __future__ import annotations

import hmac
import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}


def plotly_js() -> Path | None:
    """plotly.min.js inside the installed plotly wheel, if any."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


class DashboardData(Protocol):
    def info(self) -> dict[str, Any]: ...
    async def network(self) -> dict[str, Any]: ...
    def state(self) -> dict[str, Any]: ...
    async def alerts(self) -> list[dict[str, Any]]: ...


def _token_ok(request: Request, tokens: Callable[[], list[str]]) -> bool:
    presented = request.query_params.get("token") or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        presented = auth[7:].strip()
    ok = False
    for token in tokens():  # no early exit: timing reveals nothing
        ok |= hmac.compare_digest(presented.encode(), token.encode())
    return ok and bool(presented)


def create_router(data: DashboardData, tokens: Callable[[], list[str]]) -> APIRouter:
    """Routes for ``svc.include_router``: they join the service's own HTTP port and origin."""
    app = APIRouter()
    files = {name: STATIC / name for name in ("index.html", "app.js", "style.css")}
    if (plotly := plotly_js()) is not None:
        files["plotly.min.js"] = plotly

    @app.get("/")
    async def index() -> Response:
        return FileResponse(files["index.html"], media_type=_TYPES[".html"], headers={"cache-control": "no-store"})

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        path = files.get(name)  # a fixed list: no path from the request ever reaches the file system
        if path is None:
            return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
        return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"))

    def guarded(handler: Callable[[], Awaitable[dict[str, Any]]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not _token_ok(request, tokens):
                return JSONResponse({"error": "missing or wrong dashboard token"}, status_code=403)
            return JSONResponse(await handler(), headers={"cache-control": "no-store"})

        return endpoint

    async def info() -> dict[str, Any]:
        return data.info()

    async def network() -> dict[str, Any]:
        return await data.network()

    async def state() -> dict[str, Any]:
        return data.state()

    async def alerts() -> dict[str, Any]:
        return {"alerts": await data.alerts()}

    for path, handler in (("info", info), ("network", network), ("state", state), ("alerts", alerts)):
        app.add_api_route(f"/api/{path}", guarded(handler), methods=["GET"])
    return app
