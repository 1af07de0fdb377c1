"""The web widget: its public keys (managed per tenant), the script itself, and a demo page for the demo tenant."""

from __future__ import annotations

import html
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse

from core import tenancy, widgets
from core.schemas import WidgetKey, WidgetKeyCreate
from core.tenancy import Permission as P
from serving.deps import DbDep, RequestIdDep, TenantScope, tenant_not_found, tenant_scope
from serving.problems import Problem, problem_responses

router = APIRouter(tags=["widget"])
keys_router_prefix = "/v1/tenants/{tenant_id}/widget-keys"
DEMO_TENANT = "Demo"


@router.post(
    keys_router_prefix,
    status_code=status.HTTP_201_CREATED,
    summary="Create a public widget key for the given origins",
    responses=problem_responses(401, 403, 404, 422),
)
async def create_widget_key(
    body: WidgetKeyCreate, scope: Annotated[TenantScope, tenant_scope(P.KEYS_WRITE)], db: DbDep, rid: RequestIdDep
) -> WidgetKey:
    async with db.transaction() as conn:
        if await tenancy.get_tenant(conn, tenant_id=scope.tenant_id) is None:
            raise tenant_not_found(scope.tenant_id)
        try:
            return await widgets.create_widget_key(
                conn,
                tenant_id=scope.tenant_id,
                name=body.name,
                allowed_origins=body.allowed_origins,
                actor=scope.caller.actor,
                request_id=rid,
            )
        except ValueError as exc:
            raise Problem(
                422,
                f"allowed_origins: {exc}",
                kind="validation-error",
                errors=[{"location": "body", "field": "allowed_origins", "message": str(exc), "type": "value_error"}],
            ) from None


@router.get(keys_router_prefix, summary="List widget keys", responses=problem_responses(401, 403, 404))
async def list_widget_keys(scope: Annotated[TenantScope, tenant_scope(P.KEYS_READ)], db: DbDep) -> list[WidgetKey]:
    async with db.connection() as conn:
        return await widgets.list_widget_keys(conn, tenant_id=scope.tenant_id)


@router.delete(
    keys_router_prefix + "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a widget key",
    responses=problem_responses(401, 403, 404),
)
async def revoke_widget_key(
    key_id: str, scope: Annotated[TenantScope, tenant_scope(P.KEYS_WRITE)], db: DbDep, rid: RequestIdDep
) -> Response:
    async with db.transaction() as conn:
        keys = {key.id: key for key in await widgets.list_widget_keys(conn, tenant_id=scope.tenant_id)}
        if key_id not in keys:
            raise Problem(404, f"No widget key '{key_id}' in this tenant.", kind="not-found")
        await widgets.revoke_widget_key(
            conn, tenant_id=scope.tenant_id, key_id=key_id, actor=scope.caller.actor, request_id=rid
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _widget_script() -> bytes:
    return resources.files("serving.widget").joinpath("widget.js").read_bytes()


@router.get("/widget.js", summary="The embeddable chat widget", include_in_schema=False)
async def widget_script() -> Response:
    return Response(
        _widget_script(),
        media_type="application/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/demo", response_class=HTMLResponse, summary="The widget on the demo tenant", include_in_schema=False)
async def demo_page(request: Request, db: DbDep) -> HTMLResponse:
    origin = f"{request.url.scheme}://{request.url.netloc}"
    async with db.connection() as conn:
        tenant = await tenancy.find_tenant_by_name(conn, name=DEMO_TENANT)
        keys = await widgets.list_widget_keys(conn, tenant_id=tenant.id) if tenant else []
    key = next((k for k in keys if k.revoked_at is None and origin in k.allowed_origins), None)
    if key is None:
        body = (
            f"<p>No demo widget key allows {html.escape(origin)}. Start Parley with <code>make run</code> "
            "(it seeds the demo tenant) and open this page at the address it prints.</p>"
        )
        return HTMLResponse(_page("Parley demo", body), status_code=404)
    body = (
        "<h1>Parley demo</h1><p>This page stands for a tenant's website. The chat button in the corner is the Parley "
        "widget, answering from the demo tenant's knowledge base (StackExchange FAQ threads: try "
        "<em>How do I strikethrough text in Gmail?</em>).</p>"
        f'<script src="/widget.js" data-key="{html.escape(key.key)}" data-api="{html.escape(origin)}" defer></script>'
    )
    return HTMLResponse(_page("Parley demo", body))


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style>"
        f"</head><body>{body}</body></html>"
    )
