"""GET /dashboard: the tenant executives' page, and its assets. The page is static; it asks for a login key, keeps it
in the tab's sessionStorage and reads the figures from /v1/analytics with it, so the page itself holds no data.
The charting library is plotly.js, served from the `plotly` wheel's own copy: no CDN at run time."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from serving.problems import Problem

router = APIRouter(tags=["dashboard"], include_in_schema=False)
PAGE_DIR = Path(__file__).resolve().parent.parent / "dashboard"
# Only these names are served, from these places (never a path from the request).
# The page's own files are revalidated on every load (FileResponse answers with an ETag); plotly.js changes only
# with the installed wheel and is 4.8 MB, so it may be kept for a day.
_ASSETS = {
    "dashboard.js": ("text/javascript", lambda: PAGE_DIR / "dashboard.js", "no-cache"),
    "dashboard.css": ("text/css", lambda: PAGE_DIR / "dashboard.css", "no-cache"),
    "plotly.min.js": ("text/javascript", lambda: _plotly_js(), "public, max-age=86400"),
}
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    # The page runs only its own scripts and talks only to this origin; plotly needs inline styles.
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@cache
def _plotly_js() -> Path:
    spec = importlib.util.find_spec("plotly")  # found, not imported: importing plotly takes a second
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the plotly package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


@router.get("/dashboard")
async def dashboard_page() -> FileResponse:
    return FileResponse(PAGE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/dashboard/assets/{name}")
async def dashboard_asset(name: str) -> FileResponse:
    if name not in _ASSETS:
        raise Problem(404, f"No dashboard asset '{name}'.", kind="not-found")
    media_type, locate, caching = _ASSETS[name]
    return FileResponse(
        locate(), media_type=media_type, headers={"Cache-Control": caching, "X-Content-Type-Options": "nosniff"}
    )
