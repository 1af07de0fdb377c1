"""The dependencies routes name: `db: DbDep`, `caller: CallerDep`, `Annotated[TenantScope, tenant_scope(P.X)]`."""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from core.db import Database
from core.kb.service import KnowledgeBase
from core.limits import RateLimiter
from core.llm.catalog import Catalog
from core.registry import Registry
from core.schemas import TenantStatus
from core.settings import Settings
from core.tenancy import PLATFORM_ADMIN, Permission, Principal, authenticate_key
from core.widgets import KEY_SCHEME as WIDGET_KEY_SCHEME
from core.widgets import authenticate_widget_key
from serving.problems import Problem
from serving.services.chat import ChatService


# Every dependency is `async def`, even the trivial ones: FastAPI runs a plain `def` dependency in a worker thread,
# and those thread hops cost more CPU per chat turn than the answer itself (measured with bench/chat_load.py).
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _database(request: Request) -> Database:
    return request.app.state.db


async def _knowledge_base(request: Request) -> KnowledgeBase:
    return request.app.state.kb


async def _rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


async def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


async def _chat(request: Request) -> ChatService:
    return request.app.state.chat


async def _registry(request: Request) -> Registry:
    return request.app.state.registry


SettingsDep = Annotated[Settings, Depends(_settings)]
DbDep = Annotated[Database, Depends(_database)]
KnowledgeBaseDep = Annotated[KnowledgeBase, Depends(_knowledge_base)]
RateLimiterDep = Annotated[RateLimiter, Depends(_rate_limiter)]
ChatDep = Annotated[ChatService, Depends(_chat)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]
RegistryDep = Annotated[Registry, Depends(_registry)]


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
        if token.startswith(WIDGET_KEY_SCHEME):
            widget = await authenticate_widget_key(conn, key=token)
            identity = None
        else:
            identity = await authenticate_key(conn, key=token)
            widget = None
    if identity is None and widget is None:
        raise _unauthenticated()
    if (identity or widget).tenant_status is not TenantStatus.ACTIVE:
        raise Problem(403, "This tenant is suspended; contact the platform operator.", kind="tenant-suspended")
    if widget is not None:
        return Principal(
            actor=f"widget:{widget.key_id}",
            tenant_id=widget.tenant_id,
            widget_origins=widget.allowed_origins,
            rate_limit_per_minute=widget.rate_limit_per_minute,
        )
    return Principal(
        actor=f"key:{identity.key_id}",
        tenant_id=identity.tenant_id,
        role=identity.role,
        rate_limit_per_minute=identity.rate_limit_per_minute,
    )


CallerDep = Annotated[Principal, Depends(_caller)]


async def _platform_admin(caller: CallerDep) -> Principal:
    if caller.is_widget or not caller.is_platform_admin:
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
        if caller.is_widget:
            raise Problem(403, "A widget key can only chat.", kind="forbidden")
        if not caller.is_platform_admin and caller.tenant_id != tenant_id:
            # Another tenant's resources look exactly like missing ones.
            raise tenant_not_found(tenant_id)
        if not caller.may(permission, tenant_id=tenant_id):
            raise Problem(
                403, f"Your key's role ({caller.role}) lacks the '{permission}' permission.", kind="forbidden"
            )
        return TenantScope(tenant_id=tenant_id, caller=caller)

    return Depends(check)


def _browser_origin(request: Request) -> str:
    """The page's origin: the Origin header, which browsers send on every cross-origin request and every POST. A
    same-origin GET (the demo page reading its history) carries none, but then the browser-set Sec-Fetch-Site says
    "same-origin", so the origin is the API's own. Anything else counts as no origin."""
    if origin := request.headers.get("origin"):
        return origin
    if request.headers.get("sec-fetch-site") == "same-origin":
        return f"{request.url.scheme}://{request.url.netloc}"
    return ""


def tenant_access(permission: Permission, *or_permissions: Permission):
    """Depends(...) for routes whose tenant is the caller's own (the knowledge base, conversations, chat).

    Checks the permission (or any one of `or_permissions`), a widget key's Origin, and the tenant's rate limit (429
    with Retry-After when exceeded).
    """

    async def check(
        request: Request,
        caller: CallerDep,
        settings: SettingsDep,
        limiter: RateLimiterDep,
    ) -> TenantScope:
        if caller.is_platform_admin:
            raise Problem(
                403, "Use a key of the tenant: these routes act on the caller's own tenant.", kind="forbidden"
            )
        if caller.is_widget:
            origin = _browser_origin(request)
            if origin not in caller.widget_origins:
                raise Problem(403, "This widget key is not allowed on this origin.", kind="origin-not-allowed")
            # Read by the CORS layer when the response starts: only allowed origins get CORS headers.
            request.scope.setdefault("state", {})["cors_origin"] = origin
        needed = (permission, *or_permissions)
        if not any(caller.may(each, tenant_id=caller.tenant_id) for each in needed):
            names = " or ".join(f"'{each}'" for each in needed)
            raise Problem(403, f"Your key lacks the {names} permission.", kind="forbidden")
        per_minute = caller.rate_limit_per_minute or settings.rate_limit_per_minute
        retry_after = limiter.hit(caller.tenant_id, per_minute=per_minute)
        if retry_after is not None:
            seconds = max(1, math.ceil(retry_after))
            raise Problem(
                429,
                f"This tenant's limit of {per_minute} requests a minute is used up; retry in {seconds} s.",
                kind="rate-limited",
                headers={"Retry-After": str(seconds)},
            )
        return TenantScope(tenant_id=caller.tenant_id, caller=caller)

    return Depends(check)


async def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


RequestIdDep = Annotated[str | None, Depends(request_id)]
