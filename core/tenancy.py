"""Tenants, API keys, roles and the audit log. Every data function takes a connection, then keyword-only arguments.

Each function that changes a tenant or a key writes its audit row itself, on the same connection: run it inside a
transaction and the change and its audit row commit together.

API keys look like `prl_<12 hex prefix>_<40 char secret>`. Only the prefix (for lookup) and a SHA-256 of the whole key
are stored: the key carries 240 random bits, so a slow password hash would add latency to every request and no safety.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.types.json import Jsonb

from core.schemas import ApiKey, AuditEntry, Role, Tenant, TenantStatus

KEY_SCHEME = "prl_"
_PREFIX_LEN = 12
_KEY_LEN = len(KEY_SCHEME) + _PREFIX_LEN + 1 + 40


class Permission(StrEnum):
    TENANT_READ = "tenant:read"
    TENANT_WRITE = "tenant:write"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    AUDIT_READ = "audit:read"
    KB_READ = "kb:read"
    KB_WRITE = "kb:write"
    CHAT = "chat"
    CONVERSATIONS_READ = "conversations:read"
    CONVERSATIONS_WRITE = "conversations:write"
    ANALYTICS_READ = "analytics:read"
    POLICY_READ = "policy:read"
    POLICY_WRITE = "policy:write"
    MODELS_READ = "models:read"
    MODELS_WRITE = "models:write"


P = Permission
# The documented permission table (docs/access.md mirrors it; a test keeps the two equal).
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission),
    Role.AGENT: frozenset({P.TENANT_READ, P.KB_READ, P.CHAT, P.CONVERSATIONS_READ, P.CONVERSATIONS_WRITE}),
    Role.ANALYST: frozenset(
        {P.TENANT_READ, P.KB_READ, P.CONVERSATIONS_READ, P.ANALYTICS_READ, P.POLICY_READ, P.MODELS_READ}
    ),
    Role.VIEWER: frozenset({P.TENANT_READ, P.ANALYTICS_READ}),
}
# Owner and admin differ in one thing: an admin cannot mint, or revoke, a key that outranks it.
_RANK = {Role.OWNER: 4, Role.ADMIN: 3, Role.AGENT: 2, Role.ANALYST: 1, Role.VIEWER: 0}


def can_manage_role(actor: Role, target: Role) -> bool:
    return _RANK[actor] >= _RANK[target] and actor in (Role.OWNER, Role.ADMIN)


class TenantNameTaken(ValueError):
    pass


@dataclass(frozen=True)
class KeyIdentity:
    """Who an API key speaks for, resolved on every request (so revocation and suspension act at once)."""

    key_id: str
    tenant_id: str
    role: Role
    tenant_status: TenantStatus
    rate_limit_per_minute: int | None = None


@dataclass(frozen=True)
class Principal:
    """The caller of one request: the platform operator (no tenant) or one tenant's key with its role."""

    actor: str
    tenant_id: str | None = None
    role: Role | None = None
    # Widget visitors: a public key, only allowed to chat, only from these origins.
    widget_origins: tuple[str, ...] | None = None
    rate_limit_per_minute: int | None = None

    @property
    def is_platform_admin(self) -> bool:
        return self.tenant_id is None

    @property
    def is_widget(self) -> bool:
        return self.widget_origins is not None

    def may(self, permission: Permission, *, tenant_id: str) -> bool:
        if self.is_platform_admin:
            return True
        if self.tenant_id != tenant_id:
            return False
        if self.is_widget:
            return permission is Permission.CHAT
        return permission in ROLE_PERMISSIONS[self.role]


PLATFORM_ADMIN = Principal(actor="platform-admin")


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(8)}"


def _hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _split_key(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if len(key) != _KEY_LEN or not key.startswith(KEY_SCHEME) or key[len(KEY_SCHEME) + _PREFIX_LEN] != "_":
        return None
    return key[len(KEY_SCHEME) : len(KEY_SCHEME) + _PREFIX_LEN]


# A constant-time comparison against this when no row matched keeps a bad prefix as slow as a bad secret.
_DUMMY_HASH = _hash_key("prl_000000000000_" + "0" * 40)

_TENANT_COLUMNS = "id, name, status, settings, created_at, updated_at"
# A tenant's own request limit from its settings (`t` is the tenants row), NULL when unset or not a number.
TENANT_RATE_LIMIT_SQL = """CASE WHEN jsonb_typeof(t.settings -> 'rate_limit_per_minute') = 'number'
                                THEN (t.settings ->> 'rate_limit_per_minute')::numeric::int END"""
_KEY_COLUMNS = "id, tenant_id, name, role, prefix, created_by, created_at, last_used_at, revoked_at"


async def create_tenant(
    conn: AsyncConnection,
    *,
    name: str,
    actor: str,
    settings: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> Tenant:
    try:
        async with conn.transaction():
            cursor = await conn.execute(
                f"INSERT INTO tenants (id, name, settings) VALUES (%s, %s, %s) RETURNING {_TENANT_COLUMNS}",
                (new_id("t"), name, Jsonb(settings or {})),
            )
    except errors.UniqueViolation:
        raise TenantNameTaken(name) from None
    tenant = Tenant(**await cursor.fetchone())
    await record_audit(
        conn,
        tenant_id=tenant.id,
        actor=actor,
        action="tenant.create",
        target=tenant.id,
        details={"name": tenant.name},
        request_id=request_id,
    )
    return tenant


async def create_tenant_with_owner(
    conn: AsyncConnection,
    *,
    name: str,
    actor: str,
    settings: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> tuple[Tenant, ApiKey, str]:
    """Onboard a tenant: the tenant and its first owner key (record and secret), both audited."""
    tenant = await create_tenant(conn, name=name, actor=actor, settings=settings, request_id=request_id)
    key, secret = await create_api_key(
        conn, tenant_id=tenant.id, role=Role.OWNER, name="owner", actor=actor, request_id=request_id
    )
    return tenant, key, secret


async def get_tenant(conn: AsyncConnection, *, tenant_id: str) -> Tenant | None:
    cursor = await conn.execute(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = %s", (tenant_id,))
    row = await cursor.fetchone()
    return Tenant(**row) if row else None


async def find_tenant_by_name(conn: AsyncConnection, *, name: str) -> Tenant | None:
    cursor = await conn.execute(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE lower(name) = lower(%s)", (name,))
    row = await cursor.fetchone()
    return Tenant(**row) if row else None


async def list_tenants(conn: AsyncConnection, *, limit: int = 100, offset: int = 0) -> list[Tenant]:
    cursor = await conn.execute(
        f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY created_at, id LIMIT %s OFFSET %s", (limit, offset)
    )
    return [Tenant(**row) for row in await cursor.fetchall()]


async def update_tenant(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    name: str | None = None,
    status: TenantStatus | None = None,
    settings: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> Tenant | None:
    """Change what is given (None keeps a field); audited as tenant.suspend, tenant.resume or tenant.update."""
    try:
        async with conn.transaction():
            cursor = await conn.execute(
                f"""UPDATE tenants
                       SET name = coalesce(%s, name),
                           status = coalesce(%s, status),
                           settings = coalesce(%s, settings),
                           updated_at = now()
                     WHERE id = %s
                 RETURNING {_TENANT_COLUMNS}""",
                (name, status, Jsonb(settings) if settings is not None else None, tenant_id),
            )
    except errors.UniqueViolation:
        raise TenantNameTaken(name) from None
    row = await cursor.fetchone()
    if row is None:
        return None
    changes = {
        key: value for key, value in {"name": name, "status": status, "settings": settings}.items() if value is not None
    }
    action = {TenantStatus.SUSPENDED: "tenant.suspend", TenantStatus.ACTIVE: "tenant.resume"}.get(
        status, "tenant.update"
    )
    await record_audit(
        conn, tenant_id=tenant_id, actor=actor, action=action, target=tenant_id, details=changes, request_id=request_id
    )
    return Tenant(**row)


async def create_api_key(
    conn: AsyncConnection, *, tenant_id: str, role: Role, name: str, actor: str, request_id: str | None = None
) -> tuple[ApiKey, str]:
    """Mint a key; return its stored record and the secret, which exists nowhere else from now on."""
    prefix = secrets.token_hex(_PREFIX_LEN // 2)
    key = f"{KEY_SCHEME}{prefix}_{secrets.token_urlsafe(30)}"
    cursor = await conn.execute(
        f"""INSERT INTO api_keys (id, tenant_id, name, role, prefix, secret_hash, created_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}""",
        (new_id("k"), tenant_id, name, role, prefix, _hash_key(key), actor),
    )
    record = ApiKey(**await cursor.fetchone())
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="key.create",
        target=record.id,
        details={"role": record.role, "name": record.name},
        request_id=request_id,
    )
    return record, key


async def list_api_keys(conn: AsyncConnection, *, tenant_id: str) -> list[ApiKey]:
    cursor = await conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = %s ORDER BY created_at, id", (tenant_id,)
    )
    return [ApiKey(**row) for row in await cursor.fetchall()]


async def get_api_key(conn: AsyncConnection, *, tenant_id: str, key_id: str) -> ApiKey | None:
    cursor = await conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = %s AND id = %s", (tenant_id, key_id)
    )
    row = await cursor.fetchone()
    return ApiKey(**row) if row else None


async def revoke_api_key(
    conn: AsyncConnection, *, tenant_id: str, key_id: str, actor: str, request_id: str | None = None
) -> bool:
    """Revoke a live key of this tenant; False when there is none (unknown, another tenant's, or already revoked)."""
    cursor = await conn.execute(
        f"""UPDATE api_keys SET revoked_at = now()
             WHERE tenant_id = %s AND id = %s AND revoked_at IS NULL RETURNING {_KEY_COLUMNS}""",
        (tenant_id, key_id),
    )
    row = await cursor.fetchone()
    if row is None:
        return False
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="key.revoke",
        target=key_id,
        details={"role": row["role"], "name": row["name"]},
        request_id=request_id,
    )
    return True


async def authenticate_key(conn: AsyncConnection, *, key: str) -> KeyIdentity | None:
    """Resolve a presented key, or None for anything unknown, malformed or revoked (the caller can't tell which)."""
    prefix = _split_key(key)
    row = None
    if prefix is not None:
        cursor = await conn.execute(
            f"""SELECT k.id, k.tenant_id, k.role, k.secret_hash, t.status, {TENANT_RATE_LIMIT_SQL} AS rate_limit,
                       k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute' AS last_use_stale
                  FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
                 WHERE k.prefix = %s AND k.revoked_at IS NULL""",
            (prefix,),
        )
        row = await cursor.fetchone()
    if not hmac.compare_digest(row["secret_hash"] if row else _DUMMY_HASH, _hash_key(key)) or row is None:
        return None
    # Bounded write amplification: last_used_at is refreshed at most once a minute per key, so most requests make
    # one round trip here.
    if row["last_use_stale"]:
        await conn.execute(
            """UPDATE api_keys SET last_used_at = now()
                WHERE id = %s AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')""",
            (row["id"],),
        )
    return KeyIdentity(
        key_id=row["id"],
        tenant_id=row["tenant_id"],
        role=Role(row["role"]),
        tenant_status=TenantStatus(row["status"]),
        rate_limit_per_minute=row["rate_limit"],
    )


async def record_audit(
    conn: AsyncConnection,
    *,
    tenant_id: str | None,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO audit_log (tenant_id, actor, action, target, details, request_id)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (tenant_id, actor, action, target, Jsonb(details or {}), request_id),
    )


async def list_audit(conn: AsyncConnection, *, tenant_id: str | None, limit: int = 100) -> list[AuditEntry]:
    """A tenant's trail, newest first; tenant_id None is the operator's view across all tenants."""
    cursor = await conn.execute(
        """SELECT id, at, actor, action, tenant_id, target, details, request_id FROM audit_log
            WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s
            ORDER BY at DESC, id DESC LIMIT %(limit)s""",
        {"tenant": tenant_id, "limit": limit},
    )
    return [AuditEntry(**row) for row in await cursor.fetchall()]
