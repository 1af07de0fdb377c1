"""The dependencies the analytics routes name. Keys, roles and the database come from serving/deps.py, shared."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Query, Request

from core.analytics import Baseline, DateRange
from core.tenancy import Permission as P
from serving.deps import TenantScope, tenant_access
from serving.problems import Problem

DEFAULT_DAYS = 30
MAX_DAYS = 731  # two years: this year against the last


async def _baseline(request: Request) -> Baseline | None:
    return request.app.state.baseline


async def _date_range(
    start: Annotated[date | None, Query(alias="from", description="First day, inclusive (YYYY-MM-DD, UTC)")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day, inclusive; default today (UTC)")] = None,
) -> DateRange:
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end or (end - start).days + 1 > MAX_DAYS:
        raise Problem(
            422,
            f"'from' must not come after 'to', and the range may span at most {MAX_DAYS} days.",
            kind="validation-error",
            errors=[{"location": "query", "field": "from", "message": "bad date range", "type": "range"}],
        )
    return DateRange(start, end)


BaselineDep = Annotated[Baseline | None, Depends(_baseline)]
DateRangeDep = Annotated[DateRange, Depends(_date_range)]
# Owner, admin, analyst and viewer keys hold analytics:read; agent and widget keys do not.
AnalyticsReader = Annotated[TenantScope, tenant_access(P.ANALYTICS_READ)]
