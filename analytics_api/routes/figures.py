"""A tenant's figures over a date range (its own key, a role with analytics:read), and the operator's across tenants."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from analytics_api.deps import AnalyticsReader, BaselineDep, DateRangeDep
from analytics_api.schemas import Costs, Intents, Overview, Platform, Timeseries, Unanswered
from core import analytics, tenancy
from serving.deps import DbDep, PlatformAdminDep
from serving.problems import problem_responses

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], responses=problem_responses(401, 403, 422, 429))
Metric = Literal[tuple(analytics.METRICS)]  # type: ignore[valid-type]
Limit = Annotated[int, Query(ge=1, le=100)]


def _range(scope, span) -> dict:
    return {"tenant_id": scope.tenant_id, "start": span.start, "end": span.end, "days": span.days}


@router.get("/overview", summary="KPI tiles: the range's figures and the range before")
async def read_overview(scope: AnalyticsReader, span: DateRangeDep, db: DbDep, request: Request) -> Overview:
    async with db.connection() as conn:
        tenant = await tenancy.get_tenant(conn, tenant_id=scope.tenant_id)
        figures = await analytics.overview(conn, tenant_id=scope.tenant_id, span=span)
    return Overview(**_range(scope, span), tenant_name=tenant.name, store=request.app.state.metrics_store, **figures)


@router.get("/timeseries", summary="One metric per day, week or month")
async def read_timeseries(
    scope: AnalyticsReader,
    span: DateRangeDep,
    db: DbDep,
    metric: Metric = "conversations",
    interval: Literal["day", "week", "month"] = "day",
) -> Timeseries:
    async with db.connection() as conn:
        points = await analytics.timeseries(
            conn, tenant_id=scope.tenant_id, metric=metric, interval=interval, span=span
        )
    return Timeseries(**_range(scope, span), metric=metric, interval=interval, points=points)


@router.get("/intents", summary="The intents with the most conversations, with how each went")
async def read_intents(scope: AnalyticsReader, span: DateRangeDep, db: DbDep, limit: Limit = 10) -> Intents:
    async with db.connection() as conn:
        rows = await analytics.top_intents(conn, tenant_id=scope.tenant_id, span=span, limit=limit)
    return Intents(**_range(scope, span), intents=rows)


@router.get("/unanswered", summary="The most frequent questions the bot had no confident answer to")
async def read_unanswered(scope: AnalyticsReader, span: DateRangeDep, db: DbDep, limit: Limit = 10) -> Unanswered:
    async with db.connection() as conn:
        rows = await analytics.unanswered(conn, tenant_id=scope.tenant_id, span=span, limit=limit)
    return Unanswered(**_range(scope, span), questions=rows)


@router.get("/costs", summary="Cost per conversation, and the saving against always using the most expensive model")
async def read_costs(scope: AnalyticsReader, span: DateRangeDep, db: DbDep, baseline: BaselineDep) -> Costs:
    async with db.connection() as conn:
        figures = await analytics.costs(conn, tenant_id=scope.tenant_id, span=span, baseline=baseline)
    return Costs(**_range(scope, span), **figures)


@router.get("/platform", summary="The platform operator's view: every tenant's figures over the range")
async def read_platform(_: PlatformAdminDep, span: DateRangeDep, db: DbDep, request: Request) -> Platform:
    async with db.connection() as conn:
        rows = await analytics.platform(conn, span=span)
    return Platform(start=span.start, end=span.end, days=span.days, store=request.app.state.metrics_store, tenants=rows)
