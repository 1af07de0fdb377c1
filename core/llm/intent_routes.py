"""Per-intent routes: for one intent of one tenant, the cheapest tier whose measured answer quality holds.

The routing-policy pipeline asset computes them from outcomes (thumbs, resolution without handoff, sentiment after the
reply) and replaces a tenant's set with `replace_routes`; the router reads them through `IntentRoutes`, a per-process
cache that rereads a tenant's set at most every `ttl_s` seconds, so a new set reaches every serving process within
that time without a query per turn.

A route refines the tenant's policy, never overrides it: its tier must be one the policy lists (and the budget still
applies), and an `explore_share` of conversations keeps the plain policy so the other tiers go on being measured.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from psycopg import AsyncConnection

from core.db import Database

RoutedBy = Literal["policy", "intent", "explore"]
DEFAULT_TTL_S = 30.0
MAX_CACHED_TENANTS = 4096


@dataclass(frozen=True)
class IntentRoute:
    intent: str
    tier: str  # kb, local, or provider/model
    samples: int
    explore_share: float = 0.1
    quality: float | None = None
    # What the route was expected to save when computed (the routing-policy asset; the dashboards show it).
    baseline_tier: str | None = None
    baseline_quality: float | None = None
    baseline_cost_usd: float | None = None
    route_cost_usd: float | None = None
    answers_per_day: float | None = None


_ROUTE_COLUMNS = (
    "intent", "tier", "samples", "explore_share", "quality", "baseline_tier", "baseline_quality", "baseline_cost_usd",
    "route_cost_usd", "answers_per_day",
)  # fmt: skip


def explores(*, conversation_id: str | None, share: float) -> bool:
    """Whether this conversation keeps the plain policy. Decided per conversation, not per message, so a conversation's
    outcome (resolved, handed off) can be credited to one way of routing."""
    if share <= 0 or conversation_id is None:
        return False
    digest = hashlib.blake2b(conversation_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


async def load_routes(conn: AsyncConnection, *, tenant_id: str) -> dict[str, IntentRoute]:
    cursor = await conn.execute(
        f"SELECT {', '.join(_ROUTE_COLUMNS)} FROM routing_policy WHERE tenant_id = %s", (tenant_id,)
    )
    return {row["intent"]: IntentRoute(**row) for row in await cursor.fetchall()}


async def list_routes(conn: AsyncConnection, *, tenant_id: str) -> list[dict]:
    """The tenant's routes as stored, with when the pipelines computed them."""
    cursor = await conn.execute(
        f"SELECT {', '.join(_ROUTE_COLUMNS)}, computed_at FROM routing_policy WHERE tenant_id = %s ORDER BY intent",
        (tenant_id,),
    )
    return await cursor.fetchall()


async def replace_routes(conn: AsyncConnection, *, tenant_id: str, routes: Iterable[IntentRoute]) -> int:
    """Replace the tenant's whole set (call inside a transaction: readers see the old set or the new, never a mix)."""
    rows = [(tenant_id, *(getattr(route, column) for column in _ROUTE_COLUMNS)) for route in routes]
    await conn.execute("DELETE FROM routing_policy WHERE tenant_id = %s", (tenant_id,))
    if rows:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                f"""INSERT INTO routing_policy (tenant_id, {", ".join(_ROUTE_COLUMNS)})
                    VALUES (%s{", %s" * len(_ROUTE_COLUMNS)})""",
                rows,
            )
    return len(rows)


class IntentRoutes:
    """The routes of the tenants this process serves, each set reread at most every `ttl_s` seconds."""

    def __init__(
        self,
        *,
        db: Database,
        ttl_s: float = DEFAULT_TTL_S,
        max_tenants: int = MAX_CACHED_TENANTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.max_tenants = max_tenants
        self._clock = clock
        self._sets: OrderedDict[str, tuple[float, Mapping[str, IntentRoute]]] = OrderedDict()

    async def route(self, *, tenant_id: str, intent: str) -> IntentRoute | None:
        now = self._clock()
        cached = self._sets.get(tenant_id)
        if cached is None or now - cached[0] >= self.ttl_s:
            async with self.db.connection() as conn:
                cached = (now, await load_routes(conn, tenant_id=tenant_id))
            self._sets[tenant_id] = cached
            if len(self._sets) > self.max_tenants:
                self._sets.popitem(last=False)
        self._sets.move_to_end(tenant_id)
        return cached[1].get(intent)
