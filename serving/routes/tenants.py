"""Tenants: the operator creates, lists, suspends and resumes them; a tenant's own keys read and rename theirs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from core import tenancy
from core.schemas import AuditEntry, Tenant, TenantCreate, TenantCreated, TenantUpdate
from core.tenancy import Permission as P
from serving.deps import DbDep, PlatformAdminDep, RequestIdDep, TenantScope, tenant_not_found, tenant_scope
from serving.problems import Problem, problem_responses

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses=problem_responses(401, 403, 422))


def _name_taken(name: str) -> Problem:
    return Problem(409, f"A tenant named '{name}' already exists.", kind="conflict")


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a tenant and its first owner key")
async def create_tenant(body: TenantCreate, caller: PlatformAdminDep, db: DbDep, rid: RequestIdDep) -> TenantCreated:
    async with db.transaction() as conn:
        try:
            tenant, key, secret = await tenancy.create_tenant_with_owner(
                conn, name=body.name, settings=body.settings, actor=caller.actor, request_id=rid
            )
        except tenancy.TenantNameTaken:
            raise _name_taken(body.name) from None
    return TenantCreated(**tenant.model_dump(), api_key=secret, api_key_id=key.id)


@router.get("", summary="List tenants (platform operator)")
async def list_tenants(
    _: PlatformAdminDep,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Tenant]:
    async with db.connection() as conn:
        return await tenancy.list_tenants(conn, limit=limit, offset=offset)


@router.get("/{tenant_id}", summary="Read a tenant", responses=problem_responses(404))
async def get_tenant(scope: Annotated[TenantScope, tenant_scope(P.TENANT_READ)], db: DbDep) -> Tenant:
    async with db.connection() as conn:
        tenant = await tenancy.get_tenant(conn, tenant_id=scope.tenant_id)
    if tenant is None:
        raise tenant_not_found(scope.tenant_id)
    return tenant


@router.patch(
    "/{tenant_id}", summary="Rename, re-configure, suspend or resume a tenant", responses=problem_responses(404, 409)
)
async def update_tenant(
    body: TenantUpdate, scope: Annotated[TenantScope, tenant_scope(P.TENANT_WRITE)], db: DbDep, rid: RequestIdDep
) -> Tenant:
    if body.status is not None and not scope.caller.is_platform_admin:
        # A tenant cannot lift its own suspension, so only the operator moves status either way.
        raise Problem(403, "Only the platform operator may suspend or resume a tenant.", kind="forbidden")
    async with db.transaction() as conn:
        try:
            tenant = await tenancy.update_tenant(
                conn, tenant_id=scope.tenant_id, actor=scope.caller.actor, request_id=rid, **body.model_dump()
            )
        except tenancy.TenantNameTaken:
            raise _name_taken(body.name or "") from None
    if tenant is None:
        raise tenant_not_found(scope.tenant_id)
    return tenant


@router.get("/{tenant_id}/audit", summary="The tenant's audit trail, newest first", responses=problem_responses(404))
async def tenant_audit(
    scope: Annotated[TenantScope, tenant_scope(P.AUDIT_READ)],
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    async with db.connection() as conn:
        return await tenancy.list_audit(conn, tenant_id=scope.tenant_id, limit=limit)
