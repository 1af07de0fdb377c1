"""API keys of one tenant: minted with a role, listed without secrets, revoked with effect on the next request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status

from core import tenancy
from core.schemas import ApiKey, ApiKeyCreate, ApiKeyCreated
from core.tenancy import Permission as P
from serving.deps import DbDep, RequestIdDep, TenantScope, tenant_not_found, tenant_scope
from serving.problems import Problem, problem_responses

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/keys", tags=["keys"], responses=problem_responses(401, 403, 404, 422)
)


def _check_may_manage(scope: TenantScope, role) -> None:
    caller = scope.caller
    if not caller.is_platform_admin and not tenancy.can_manage_role(caller.role, role):
        raise Problem(403, f"A {caller.role} key cannot manage {role} keys.", kind="forbidden")


@router.post("", status_code=status.HTTP_201_CREATED, summary="Mint a key (the secret is shown once)")
async def create_key(
    body: ApiKeyCreate, scope: Annotated[TenantScope, tenant_scope(P.KEYS_WRITE)], db: DbDep, rid: RequestIdDep
) -> ApiKeyCreated:
    _check_may_manage(scope, body.role)
    async with db.transaction() as conn:
        if await tenancy.get_tenant(conn, tenant_id=scope.tenant_id) is None:
            raise tenant_not_found(scope.tenant_id)
        key, secret = await tenancy.create_api_key(
            conn, tenant_id=scope.tenant_id, role=body.role, name=body.name, actor=scope.caller.actor, request_id=rid
        )
    return ApiKeyCreated(id=key.id, key=secret, role=key.role, name=key.name, tenant_id=key.tenant_id)


@router.get("", summary="List keys (never their secrets)")
async def list_keys(scope: Annotated[TenantScope, tenant_scope(P.KEYS_READ)], db: DbDep) -> list[ApiKey]:
    async with db.connection() as conn:
        if await tenancy.get_tenant(conn, tenant_id=scope.tenant_id) is None:
            raise tenant_not_found(scope.tenant_id)
        return await tenancy.list_api_keys(conn, tenant_id=scope.tenant_id)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key, effective immediately")
async def revoke_key(
    key_id: str, scope: Annotated[TenantScope, tenant_scope(P.KEYS_WRITE)], db: DbDep, rid: RequestIdDep
) -> Response:
    async with db.transaction() as conn:
        key = await tenancy.get_api_key(conn, tenant_id=scope.tenant_id, key_id=key_id)
        if key is None:
            raise Problem(404, f"No key '{key_id}' in this tenant.", kind="not-found")
        _check_may_manage(scope, key.role)
        # Revoking an already revoked key changes nothing: 204 again, and no second audit row.
        await tenancy.revoke_api_key(
            conn, tenant_id=scope.tenant_id, key_id=key_id, actor=scope.caller.actor, request_id=rid
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
