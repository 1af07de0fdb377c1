"""What a tenant's answers cost: calls, tokens, cost and cache hits, by day, model or tier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from core import metrics
from core.schemas import UsageReport, UsageRow
from core.tenancy import Permission as P
from serving.deps import DbDep, TenantScope, tenant_access
from serving.problems import Problem, problem_responses

router = APIRouter(tags=["usage"], responses=problem_responses(401, 403, 422, 429))

MAX_SPAN = timedelta(days=366)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/v1/usage", summary="The tenant's model usage and cost (default: this month so far)")
async def read_usage(
    scope: Annotated[TenantScope, tenant_access(P.ANALYTICS_READ)],
    db: DbDep,
    start: Annotated[datetime | None, Query(alias="from", description="inclusive; ISO 8601, UTC if no offset")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="exclusive; default now")] = None,
    group_by: Literal["day", "model", "tier"] = "day",
) -> UsageReport:
    now = datetime.now(UTC)
    end = _utc(end) if end else now
    start = _utc(start) if start else now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if not start < end or end - start > MAX_SPAN:
        raise Problem(
            422,
            "'from' must come before 'to', at most 366 days apart.",
            kind="validation-error",
            errors=[{"location": "query", "field": "from", "message": "bad time range", "type": "range"}],
        )
    async with db.connection() as conn:
        rows = await metrics.usage_summary(conn, tenant_id=scope.tenant_id, start=start, end=end, group_by=group_by)
        store = await metrics.store_kind(conn)
    usage = [UsageRow(**row) for row in rows]
    calls = sum(row.calls for row in usage)
    return UsageReport(
        start=start,
        end=end,
        group_by=group_by,
        store=store,
        rows=usage,
        total_cost_usd=round(sum(row.cost_usd for row in usage), 8),
        total_calls=calls,
        cache_hit_rate=round(sum(row.cache_hits for row in usage) / calls, 4) if calls else 0.0,
    )
