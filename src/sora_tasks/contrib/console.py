"""A small web console over the REST routes: the caller's tasks with live progress, their videos,
cancel, and a form that creates a task.

The page is rendered on the server (Jinja2, every value escaped) and driven by a little vanilla
JavaScript shipped in the package: no build step, nothing loaded from another origin. The script
speaks only to the REST routes of :func:`sora_tasks.contrib.fastapi.create_router` (mounted under
``api_prefix``), including its Server-Sent Events route ``GET {api_prefix}/events``, so creating a
task from the page goes through exactly the validation and error messages of the API.

Mount it next to the REST router, behind the same authentication::

    app.include_router(create_router(manager, current_user=user_id_from_cookie))
    app.include_router(create_console_router(manager, current_user=user_id_from_cookie))

The browser sends the page's requests (``fetch`` and ``EventSource``) with its cookies and no
other credentials: ``current_user`` must accept a cookie (or a proxy in front must authenticate).
"""

# no `from __future__ import annotations`: FastAPI reads the route signatures at runtime, and
# they use aliases local to create_console_router
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from .._manager import TaskManager
from .._models import TaskStatus
from ._rest_models import TaskBody

__all__ = ["create_console_router"]

_ASSETS = resources.files("sora_tasks.contrib").joinpath("_console")
_MEDIA_TYPES = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css"}
_ASSET_ROUTE = "sora_tasks_console_asset"
# the page runs only its own script and style; media may come from an archive's presigned URL
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' https: http:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "content-security-policy": _PAGE_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    version: str


def _load_assets() -> dict[str, _Asset]:
    assets = {}
    for name, media_type in _MEDIA_TYPES.items():
        body = _ASSETS.joinpath("static", name).read_bytes()
        assets[name] = _Asset(body, media_type, hashlib.sha256(body).hexdigest()[:16])
    return assets


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sora_tasks.contrib", "_console/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def create_console_router(
    manager: TaskManager,
    *,
    current_user: Callable[..., Awaitable[str] | str],
    prefix: str = "/console",
    api_prefix: str = "/api/video",
    page_size: int = 50,
) -> APIRouter:
    """The console page at ``{prefix}/`` and its two assets, for the user ``current_user`` returns.

    ``api_prefix`` is where :func:`~sora_tasks.contrib.fastapi.create_router` is mounted in the
    same application. The page lists the caller's newest ``page_size`` tasks; newer ones appear
    as their events arrive.
    """
    if page_size < 1 or page_size > 500:
        raise ValueError(f"page_size must be between 1 and 500, got {page_size}")
    assets = _load_assets()
    template = _environment().get_template("console.html")
    router = APIRouter(prefix=prefix.rstrip("/"), include_in_schema=False)
    User = Annotated[str, Depends(current_user)]

    @router.get("/", response_class=HTMLResponse)
    async def console_page(request: Request, user: User) -> HTMLResponse:
        page = await manager.list(user_id=user, limit=page_size)
        api = request.scope.get("root_path", "") + api_prefix.rstrip("/")
        tasks = [_view(TaskBody.of(task, None), api) for task in page.items]
        html = template.render(
            api=api,
            page_size=page_size,
            user=user,
            tasks=tasks,
            script=_asset_path(request, "console.js", assets),
            style=_asset_path(request, "console.css", assets),
        )
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    @router.get("/static/{name}", name=_ASSET_ROUTE)
    async def console_asset(name: str) -> Response:
        asset = assets.get(name)
        if asset is None:
            return Response("no such asset", status_code=404, media_type="text/plain")
        # the page asks for each asset with its digest, so a cached copy is never stale
        headers = {"cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"}
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return router


def _asset_path(request: Request, name: str, assets: dict[str, _Asset]) -> str:
    # a path, not a URL: behind a proxy that terminates TLS the scheme seen here is wrong
    path = request.url_for(_ASSET_ROUTE, name=name).path
    return f"{path}?v={assets[name].version}"


def _view(body: TaskBody, api: str) -> dict[str, Any]:
    """The task in the REST shape the script receives, with the content path it plays."""
    shown = body.model_dump(mode="json", by_alias=True)
    if body.status is TaskStatus.COMPLETED:
        shown["videoUrl"] = f"{api}/tasks/{body.video_id}/content"
    return shown
