"""The metrics store's daily facts: gold's tenant_daily and intent_daily exported to PostgreSQL for the dashboards
with the day's most asked unanswered questions (from silver), and the usage roll-ups (hourly usage, daily routing
outcomes) refreshed.

Idempotent per tenant and day: an export replaces the (tenant, day) keys it covers, rows and all, in one
transaction (core/metrics.replace_days). The asset exports the tenants whose gold rows changed since the gold version
the store last took (recorded in `metrics_exports` in the same transaction), every day of theirs, because a tenant's
gold is rebuilt whole; `export_gold(days=...)` re-exports chosen days for every tenant.
"""

import asyncio
from collections.abc import Iterable
from datetime import date

import dagster as dg
import polars as pl
import polars.selectors as cs
import psycopg
from psycopg.rows import dict_row

from core import metrics
from core.lake import GOLD_INTENT_DAILY, GOLD_TENANT_DAILY, SILVER_MESSAGES, Lake
from pipelines.keys import INTENT_DAILY, MESSAGES, METRICS_STORE, TENANT_DAILY
from pipelines.resources import LakeResource, PostgresResource
from pipelines.transforms.gold import unanswered_questions


def _read(
    lake: Lake, table, *, tenant_ids: Iterable[str] | None, days: Iterable[date] | None, columns=None
) -> pl.DataFrame:
    frame = lake.scan(table)
    if frame is None:
        return pl.DataFrame()
    if tenant_ids is not None:
        frame = frame.filter(pl.col("tenant_id").is_in(sorted(set(tenant_ids))))
    if days is not None:
        frame = frame.filter(pl.col("date").is_in(sorted(set(days))))
    return (frame.select(columns) if columns else frame).collect()


def _gold(lake: Lake, table, *, tenant_ids: Iterable[str] | None, days: Iterable[date] | None) -> pl.DataFrame:
    frame = _read(lake, table, tenant_ids=tenant_ids, days=days)
    if not frame.width:
        return frame
    # A count gold leaves empty (no message scored for sentiment that day, say) is a count of none.
    return frame.rename({"date": "day"}).with_columns(cs.integer().fill_null(0))


def _unanswered(lake: Lake, *, tenant_ids: Iterable[str] | None, days: Iterable[date] | None) -> pl.DataFrame:
    columns = ["tenant_id", "date", "seq", "role", "text", "answered"]
    messages = _read(lake, SILVER_MESSAGES, tenant_ids=tenant_ids, days=days, columns=columns)
    return unanswered_questions(messages) if messages.height else pl.DataFrame()


async def _write(
    dsn: str, *, keys, whole_tenants, tenant_rows, intent_rows, unanswered_rows, version: int | None
) -> dict[str, int]:
    """One transaction: when whole tenants are exported (`whole_tenants`: their ids, or True for all), the days the
    store holds for them join the keys, so a day gold no longer has is emptied; then the keys are replaced."""
    keys = set(keys)
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn, conn.transaction():
        if whole_tenants:
            keys |= await metrics.stored_days(conn, tenant_ids=None if whole_tenants is True else whole_tenants)
        written = await metrics.replace_days(
            conn,
            tenant_days=sorted(keys),
            tenant_rows=tenant_rows,
            intent_rows=intent_rows,
            unanswered_rows=unanswered_rows,
        )
        if version is not None:
            await metrics.record_export(conn, source=GOLD_TENANT_DAILY.name, version=version)
    return written


def export_gold(
    lake: Lake,
    dsn: str,
    *,
    tenant_ids: Iterable[str] | None = None,
    days: Iterable[date] | None = None,
    version: int | None = None,
) -> dict[str, int]:
    """Replace the store's rows of these tenants and days (None: all) with gold's, recording gold's `version` when
    given. The keys replaced are the (tenant, day) pairs gold has for them and, when whole tenants are exported, the
    days the store has for them that gold no longer has."""
    tenant_daily = _gold(lake, GOLD_TENANT_DAILY, tenant_ids=tenant_ids, days=days)
    intent_daily = _gold(lake, GOLD_INTENT_DAILY, tenant_ids=tenant_ids, days=days)
    unanswered = _unanswered(lake, tenant_ids=tenant_ids, days=days)
    keys: set[tuple[str, date]] = set()
    for frame in (tenant_daily, intent_daily):
        if frame.height:
            keys |= set(frame.select("tenant_id", "day").iter_rows())
    whole_tenants = False if days is not None else (True if tenant_ids is None else sorted(set(tenant_ids)))
    return asyncio.run(
        _write(
            dsn,
            keys=keys,
            whole_tenants=whole_tenants,
            tenant_rows=tenant_daily.to_dicts(),
            intent_rows=intent_daily.to_dicts(),
            unanswered_rows=unanswered.to_dicts(),
            version=version,
        )
    )


def export_changed(lake: Lake, dsn: str) -> dict:
    """Export the tenants whose gold changed since the version the store holds, and record the new version. (Gold
    rebuilds a tenant's tenant_daily and intent_daily together, so the first's log says what changed in both.)"""
    since = asyncio.run(_exported_version(dsn))
    tenants, version = lake.tenants_changed(GOLD_TENANT_DAILY, since=since)
    if version is None or not tenants:
        return {"tenants": 0, "keys": 0, "gold_version": -1 if version is None else version, "tenant_ids": []}
    written = export_gold(lake, dsn, tenant_ids=tenants, version=version)
    return {"tenants": len(tenants), "gold_version": version, "tenant_ids": sorted(tenants), **written}


async def _exported_version(dsn: str) -> int | None:
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        return await metrics.exported_version(conn, source=GOLD_TENANT_DAILY.name)


async def _refresh(dsn: str) -> str:
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row, autocommit=True) as conn:
        await metrics.refresh_rollups(conn)
        return await metrics.store_kind(conn)


@dg.asset(
    key=METRICS_STORE,
    deps=[TENANT_DAILY, INTENT_DAILY, MESSAGES],
    group_name="metrics",
    kinds={"postgres"},
    description="Gold's daily facts in the metrics store (tenant_daily, intent_daily; hypertables with TimescaleDB) "
    "with the most asked unanswered questions from silver, replaced per tenant and day, and the usage roll-ups "
    "(usage_hourly, routing_daily) refreshed: what the dashboards read.",
)
def metrics_store(lake: LakeResource, postgres: PostgresResource) -> dg.MaterializeResult:
    exported = export_changed(lake.lake(), postgres.dsn)
    mode = asyncio.run(_refresh(postgres.dsn))
    return dg.MaterializeResult(
        metadata={
            "mode": mode,
            "tenants_exported": exported["tenants"],
            "tenant_ids": dg.MetadataValue.json(exported["tenant_ids"]),
            "keys_replaced": exported["keys"],
            "gold_version": exported["gold_version"],
        }
    )
