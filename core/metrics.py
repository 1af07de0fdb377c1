"""The metrics store: model usage per answer, in PostgreSQL (a TimescaleDB hypertable when the server has Timescale),
the daily facts the dashboards read (exported from the lake's gold tables), and an hourly roll-up of usage.

Each usage row is written together with its `usage.recorded` outbox event and, when it cost anything, the tenant's
running monthly total, in one statement: the lakehouse sees exactly what the budget checks see, and a budget check reads
one row instead of summing a month of usage.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Literal

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


# --- The daily facts the dashboards read (tenant_daily, intent_daily), exported from the lake's gold tables.

TENANT_DAILY_COLUMNS = (
    "conversations", "resolved", "handoff", "abandoned", "open", "deflection_rate", "messages", "user_messages",
    "assistant_messages", "unanswered", "answered_by_cache", "answered_by_kb", "answered_by_local", "answered_by_llm",
    "feedback_up", "feedback_down", "satisfaction", "sentiment_negative", "sentiment_neutral", "sentiment_positive",
    "sentiment_mean", "input_tokens", "output_tokens", "cost_usd", "cost_per_conversation_usd", "latency_ms_p50",
    "latency_ms_p95", "pii_redactions",
)  # fmt: skip
INTENT_DAILY_COLUMNS = (
    "conversations", "resolved", "handoff", "abandoned", "deflection_rate", "messages", "unanswered", "feedback_up",
    "feedback_down", "negative_share", "cost_usd",
)  # fmt: skip

UNANSWERED_DAILY_COLUMNS = ("question", "example", "asked")


async def replace_days(
    conn: AsyncConnection,
    *,
    tenant_days: Sequence[tuple[str, date]],
    tenant_rows: Sequence[Mapping[str, Any]],
    intent_rows: Sequence[Mapping[str, Any]],
    unanswered_rows: Sequence[Mapping[str, Any]] = (),
) -> dict[str, int]:
    """Make the store's rows for these (tenant, day) keys exactly `tenant_rows`, `intent_rows` and `unanswered_rows`
    (each row has tenant_id, day, [intent | question, example, asked,] and the columns above): a key without rows is
    emptied, so re-exporting a day replaces it and never adds to it. Call inside a transaction: readers see the old
    day or the new one."""
    tenants = [tenant for tenant, _ in tenant_days]
    days = [day for _, day in tenant_days]
    keys = "unnest(%s::text[], %s::date[]) AS k(tenant_id, day)"
    deleted = 0
    for table in ("tenant_daily", "intent_daily", "unanswered_daily"):
        cursor = await conn.execute(
            f"DELETE FROM {table} t USING {keys} WHERE t.tenant_id = k.tenant_id AND t.day = k.day", (tenants, days)
        )
        deleted += cursor.rowcount
    copies = (
        ("tenant_daily", ("tenant_id", "day", *TENANT_DAILY_COLUMNS), tenant_rows),
        ("intent_daily", ("tenant_id", "day", "intent", *INTENT_DAILY_COLUMNS), intent_rows),
        ("unanswered_daily", ("tenant_id", "day", *UNANSWERED_DAILY_COLUMNS), unanswered_rows),
    )
    async with conn.cursor() as cursor:
        for table, columns, rows in copies:
            async with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row([row.get(column) for column in columns])
    return {
        "keys": len(tenant_days),
        "deleted": deleted,
        "tenant_days": len(tenant_rows),
        "intent_days": len(intent_rows),
        "unanswered_questions": len(unanswered_rows),
    }


async def stored_days(conn: AsyncConnection, *, tenant_ids: Sequence[str] | None) -> set[tuple[str, date]]:
    """The (tenant, day) keys the store holds for these tenants (None: every tenant)."""
    cursor = await conn.execute(
        "SELECT tenant_id, day FROM tenant_daily WHERE %(all)s OR tenant_id = ANY(%(tenants)s)",
        {"all": tenant_ids is None, "tenants": list(tenant_ids or [])},
    )
    return {(row["tenant_id"], row["day"]) for row in await cursor.fetchall()}


async def exported_version(conn: AsyncConnection, *, source: str) -> int | None:
    cursor = await conn.execute("SELECT source_version FROM metrics_exports WHERE source = %s", (source,))
    row = await cursor.fetchone()
    return None if row is None else row["source_version"]


async def record_export(conn: AsyncConnection, *, source: str, version: int) -> None:
    await conn.execute(
        """INSERT INTO metrics_exports (source, source_version) VALUES (%s, %s)
           ON CONFLICT (source) DO UPDATE SET source_version = excluded.source_version, exported_at = now()""",
        (source, version),
    )


ROLLUPS = ("usage_hourly", "routing_daily")


async def refresh_rollups(conn: AsyncConnection) -> None:
    """Bring the usage roll-ups (hourly usage, daily routing outcomes) up to date on plain PostgreSQL; TimescaleDB's
    policies refresh its continuous aggregates themselves."""
    if await store_kind(conn) == "timescaledb":
        return
    for view in ROLLUPS:
        cursor = await conn.execute("SELECT relispopulated FROM pg_class WHERE relname = %s", (view,))
        populated = (await cursor.fetchone())["relispopulated"]
        # CONCURRENTLY keeps the view readable while it refreshes, but cannot fill a view that was never filled.
        await conn.execute(f"REFRESH MATERIALIZED VIEW {'CONCURRENTLY' if populated else ''} {view}")
