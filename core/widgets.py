"""Public widget keys: they sit in a tenant's web page, so what protects them is the origins allowed to use them.

A widget key may only chat (start conversations, send messages, read its own conversations, give feedback), only from
an allowed `Origin`, and a visitor reaches a conversation only with the visitor token issued when it started.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from psycopg import AsyncConnection

from core.schemas import TenantStatus, WidgetKey
from core.tenancy import TENANT_RATE_LIMIT_SQL, new_id, record_audit

KEY_SCHEME = "pk_"
_COLUMNS = "id, tenant_id, key, name, allowed_origins, created_by, created_at, revoked_at"


@dataclass(frozen=True)
class WidgetIdentity:
    key_id: str
    tenant_id: str
    allowed_origins: tuple[str, ...]
    tenant_status: TenantStatus
    rate_limit_per_minute: int | None


def normalise_origin(origin: str) -> str:
    """`scheme://host[:port]`, lowercased, default ports dropped: the form browsers send in the Origin header."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"'{origin}' is not an origin like https://shop.example.com")
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


async def create_widget_key(
    conn: AsyncConnection, *, tenant_id: str, name: str, allowed_origins: list[str], actor: str, request_id=None
) -> WidgetKey:
    origins = sorted({normalise_origin(origin) for origin in allowed_origins})
    cursor = await conn.execute(
        f"""INSERT INTO widget_keys (id, tenant_id, key, name, allowed_origins, created_by)
            VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (new_id("w"), tenant_id, KEY_SCHEME + secrets.token_urlsafe(18), name, origins, actor),
    )
    key = WidgetKey(**await cursor.fetchone())
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="widget_key.create",
        target=key.id,
        details={"name": name, "allowed_origins": origins},
        request_id=request_id,
    )
    return key


async def list_widget_keys(conn: AsyncConnection, *, tenant_id: str) -> list[WidgetKey]:
    cursor = await conn.execute(
        f"SELECT {_COLUMNS} FROM widget_keys WHERE tenant_id = %s ORDER BY created_at, id", (tenant_id,)
    )
    return [WidgetKey(**row) for row in await cursor.fetchall()]


async def revoke_widget_key(conn: AsyncConnection, *, tenant_id: str, key_id: str, actor: str, request_id=None) -> bool:
    cursor = await conn.execute(
        """UPDATE widget_keys SET revoked_at = now()
            WHERE tenant_id = %s AND id = %s AND revoked_at IS NULL RETURNING id""",
        (tenant_id, key_id),
    )
    if await cursor.fetchone() is None:
        return False
    await record_audit(
        conn, tenant_id=tenant_id, actor=actor, action="widget_key.revoke", target=key_id, request_id=request_id
    )
    return True


async def authenticate_widget_key(conn: AsyncConnection, *, key: str) -> WidgetIdentity | None:
    if not key.startswith(KEY_SCHEME) or len(key) > 64:
        return None
    cursor = await conn.execute(
        f"""SELECT w.id, w.tenant_id, w.allowed_origins, t.status, {TENANT_RATE_LIMIT_SQL} AS rate_limit
              FROM widget_keys w JOIN tenants t ON t.id = w.tenant_id
             WHERE w.key = %s AND w.revoked_at IS NULL""",
        (key,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return WidgetIdentity(
        key_id=row["id"],
        tenant_id=row["tenant_id"],
        allowed_origins=tuple(row["allowed_origins"]),
        tenant_status=TenantStatus(row["status"]),
        rate_limit_per_minute=row["rate_limit"],
    )


async def origin_has_a_widget(conn: AsyncConnection, *, origin: str) -> bool:
    """For CORS preflights, which carry no key: does any live widget key allow this origin?"""
    cursor = await conn.execute(
        "SELECT 1 FROM widget_keys WHERE revoked_at IS NULL AND %s = ANY(allowed_origins) LIMIT 1", (origin,)
    )
    return await cursor.fetchone() is not None
