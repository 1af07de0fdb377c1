"""The dependencies routes name: `db: DbDep`, `caller: CallerDep`, `Annotated[TenantScope, tenant_scope(P.X)]`."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from core.db import Database
from core.schemas import TenantStatus
from core.settings import Settings
from core.tenancy import PLATFORM_ADMIN, Permission, Principal, authenticate_key
from serving.problems import Problem


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _database(request: Request) -> Database:
    return request.app.state.db


SettingsDep = Annotated[Settings, Depends(_settings)]
DbDep = Annotated[Database, Depends(_database)]


# Identical for a missing, malformed, unknown or revoked key, so a caller learns nothing about which keys exist.
def _unauthenticated() -> Problem:
    return Problem(
        401,
        "A valid API key is required: send it as 'Authorization: Bearer <key>'.",
        kind="unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="parley"'},
    )


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _caller(request: Request, settings: SettingsDep, db: DbDep) -> Principal:
    token = _bearer_token(request)
    if token is None:
        raise _unauthenticated()
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return PLATFORM_ADMIN
    async with db.connection() as conn:
        identity = await authenticate_key(conn, key=token)
    if identity is None:
        raise _unauthenticated()
    if identity.tenant_status is not TenantStatus.ACTIVE:
        raise Problem(403, "This tenant is suspended; contact the platform operator.", kind="tenant-suspended")
    return Principal(actor=f"key:{identity.key_id}", tenant_id=identity.tenant_id, role=identity.role)


CallerDep = Annotated[Principal, Depends(_caller)]


async def _platform_admin(caller: CallerDep) -> Principal:
    if not caller.is_platform_admin:
        raise Problem(403, "Only the platform operator may do this.", kind="forbidden")
    return caller


PlatformAdminDep = Annotated[Principal, Depends(_platform_admin)]


@dataclass(frozen=True)
class TenantScope:
    """A request allowed to act on one tenant, by whom."""

    tenant_id: str
    caller: Principal


def tenant_not_found(tenant_id: str) -> Problem:
    return Problem(404, f"No tenant '{tenant_id}'.", kind="not-found")


def tenant_scope(permission: Permission):
    """Depends(...) for routes under /v1/tenants/{tenant_id} that need `permission` on that tenant."""

    async def check(tenant_id: Annotated[str, Path(max_length=64)], caller: CallerDep) -> TenantScope:
        if not caller.is_platform_admin and caller.tenant_id != tenant_id:
            # Another tenant's resources look exactly like missing ones.
            raise tenant_not_found(tenant_id)
        if not caller.may(permission, tenant_id=tenant_id):
            raise Problem(
                403, f"Your key's role ({caller.role}) lacks the '{permission}' permission.", kind="forbidden"
            )
        return TenantScope(tenant_id=tenant_id, caller=caller)

    return Depends(check)


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


RequestIdDep = Annotated[str | None, Depends(request_id)]
