"""The metrics store: model usage per answer, in PostgreSQL (a TimescaleDB hypertable when the server has Timescale).

Each usage row is written together with its `usage.recorded` outbox event and, when it cost anything, the tenant's
running monthly total, in one statement: the lakehouse sees exactly what the budget checks see, and a budget check reads
one row instead of summing a month of usage.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

Outcome = Literal["ok", "fallback", "error"]
GroupBy = Literal["day", "model", "tier"]


@dataclass(frozen=True)
class UsageRecord:
    tier: str
    outcome: Outcome
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    cache_hit: bool = False
    conversation_id: str | None = None
    message_id: str | None = None
    intent: str | None = None
    routed_by: str = "policy"  # policy, intent (a per-intent route led) or explore (one existed; the policy led)


_RECORD = """
WITH row AS (
    INSERT INTO usage (tenant_id, conversation_id, message_id, tier, provider, model, input_tokens, output_tokens,
                       cost_usd, latency_ms, cache_hit, outcome, intent, routed_by)
    VALUES (%(tenant_id)s, %(conversation_id)s, %(message_id)s, %(tier)s, %(provider)s, %(model)s, %(input_tokens)s,
            %(output_tokens)s, %(cost_usd)s, %(latency_ms)s, %(cache_hit)s, %(outcome)s, %(intent)s, %(routed_by)s)
    RETURNING at
), spend AS (
    INSERT INTO usage_monthly AS total (tenant_id, month, cost_usd)
    SELECT %(tenant_id)s, date_trunc('month', row.at AT TIME ZONE 'UTC')::date, %(cost_usd)s FROM row
     WHERE %(cost_usd)s > 0
    ON CONFLICT (tenant_id, month) DO UPDATE SET cost_usd = total.cost_usd + excluded.cost_usd
)
INSERT INTO outbox (event_id, tenant_id, type, payload, created_at)
SELECT %(event_id)s, %(tenant_id)s, 'usage.recorded', %(payload)s::jsonb || jsonb_build_object('at', row.at), row.at
  FROM row
"""


async def record_usage(conn: AsyncConnection, *, tenant_id: str, record: UsageRecord) -> None:
    fields = asdict(record)
    await conn.execute(_RECORD, {**fields, "tenant_id": tenant_id, "event_id": uuid.uuid4(), "payload": Jsonb(fields)})


# Only these expressions are ever formatted into the query (never caller input).
_GROUP_KEY = {
    "day": "to_char(date_trunc('day', at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
    "model": "coalesce(provider || '/' || model, tier)",
    "tier": "tier",
}


async def usage_summary(
    conn: AsyncConnection, *, tenant_id: str, start: datetime, end: datetime, group_by: GroupBy
) -> list[dict]:
    """Calls, tokens, cost and cache hits of the tenant in [start, end), one row per day, model or tier."""
    key = _GROUP_KEY[group_by]
    cursor = await conn.execute(
        f"""SELECT {key} AS key, count(*) AS calls, sum(input_tokens)::bigint AS input_tokens,
                   sum(output_tokens)::bigint AS output_tokens, sum(cost_usd)::float8 AS cost_usd,
                   count(*) FILTER (WHERE cache_hit) AS cache_hits,
                   count(*) FILTER (WHERE outcome = 'error') AS errors
              FROM usage WHERE tenant_id = %s AND at >= %s AND at < %s
             GROUP BY 1 ORDER BY 1""",
        (tenant_id, start, end),
    )
    return await cursor.fetchall()


# The month in UTC, as usage_monthly keys it; shared by spent_this_month and the per-turn routing read.
MONTH_SPEND = """coalesce((SELECT cost_usd FROM usage_monthly
                            WHERE tenant_id = %(tenant_id)s
                              AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0)::float8"""
CONVERSATION_SPEND = """coalesce((SELECT sum(cost_usd) FROM usage
                                   WHERE tenant_id = %(tenant_id)s AND conversation_id = %(conversation_id)s),
                                  0)::float8"""


async def spent_this_month(conn: AsyncConnection, *, tenant_id: str) -> float:
    """What the tenant's answers cost this calendar month (UTC): what budgets are checked against."""
    cursor = await conn.execute(f"SELECT {MONTH_SPEND} AS spent", {"tenant_id": tenant_id})
    return (await cursor.fetchone())["spent"]


async def store_kind(conn: AsyncConnection) -> str:
    """Which store usage lives in, "timescaledb" (a hypertable) or "postgresql": operators should know."""
    cursor = await conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS timescale")
    return "timescaledb" if (await cursor.fetchone())["timescale"] else "postgresql"
