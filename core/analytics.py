"""The dashboards' questions, asked of the metrics store (core/metrics.py): KPIs over a date range against the range
before it, a metric per day, week or month, top intents, the most asked unanswered questions, and what answers cost
against always using the most expensive model.

Ratios over a range are taken from the sums of their parts (deflection = resolved / closed conversations over the
range), never averaged from daily ratios. Every query reads one tenant's rows by primary key and a day range, on
plain PostgreSQL and TimescaleDB alike (date_bin and date_trunc exist in both), so both modes give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from psycopg import AsyncConnection

Interval = Literal["day", "week", "month"]
INTERVALS: tuple[Interval, ...] = ("day", "week", "month")
# A range's answers on free tiers are priced as if the most expensive model had written them at the tenant's own mean
# tokens per model answer; a tenant with no model answers in the range gets these (a short RAG prompt and answer).
ASSUMED_INPUT_TOKENS = 700
ASSUMED_OUTPUT_TOKENS = 150

_SCORED = "(sentiment_negative + sentiment_neutral + sentiment_positive)"
_CLOSED = "(resolved + handoff + abandoned)"
_SENTIMENT_WEIGHT = f"CASE WHEN sentiment_mean IS NULL THEN 0 ELSE {_SCORED} END"


def _ratio(part: str, whole: str) -> str:
    return f"sum({part})::float8 / nullif(sum({whole}), 0)"


# The metrics a time series can show, each an aggregate over tenant_daily rows (only these are formatted into SQL).
METRICS: dict[str, str] = {
    "conversations": "sum(conversations)::float8",
    "messages": "sum(messages)::float8",
    "resolved": "sum(resolved)::float8",
    "handoff": "sum(handoff)::float8",
    "unanswered": "sum(unanswered)::float8",
    "deflection_rate": _ratio("resolved", _CLOSED),
    "satisfaction": _ratio("feedback_up", "feedback_up + feedback_down"),
    "sentiment_mean": _ratio(f"sentiment_mean * {_SCORED}", _SENTIMENT_WEIGHT),
    "negative_share": _ratio("sentiment_negative", _SCORED),
    "cost_usd": "sum(cost_usd)::float8",
    "cost_per_conversation_usd": _ratio("cost_usd", "conversations"),
    "latency_ms_p95": "max(latency_ms_p95)::float8",  # the slowest day's P95 in the bucket
}
# Counts are zero on a day without rows; ratios and latencies are unknown.
_COUNTS = {"conversations", "messages", "resolved", "handoff", "unanswered", "cost_usd"}

_KPI_COLUMNS = {
    "conversations": "sum(conversations)",
    "resolved": "sum(resolved)",
    "handoff": "sum(handoff)",
    "abandoned": "sum(abandoned)",
    "open": "sum(open)",
    "messages": "sum(messages)",
    "unanswered": "sum(unanswered)",
    "feedback_up": "sum(feedback_up)",
    "feedback_down": "sum(feedback_down)",
    "sentiment_negative": "sum(sentiment_negative)",
    "sentiment_neutral": "sum(sentiment_neutral)",
    "sentiment_positive": "sum(sentiment_positive)",
    "sentiment_weighted": f"sum(sentiment_mean * {_SCORED})",
    "sentiment_weight": f"sum({_SENTIMENT_WEIGHT})",
    "cost_usd": "sum(cost_usd)",
    "latency_ms_p95": "max(latency_ms_p95)",
    "answered_by_cache": "sum(answered_by_cache)",
    "answered_by_kb": "sum(answered_by_kb)",
    "answered_by_local": "sum(answered_by_local)",
    "answered_by_llm": "sum(answered_by_llm)",
    "input_tokens": "sum(input_tokens)",
    "output_tokens": "sum(output_tokens)",
}


@dataclass(frozen=True)
class DateRange:
    """Whole UTC days, `start` to `end` inclusive."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> DateRange:
        """The range of the same length just before this one."""
        return DateRange(self.start - timedelta(days=self.days), self.start - timedelta(days=1))


def _div(part: float | None, whole: float | None) -> float | None:
    return None if not whole or part is None else part / whole


def _kpis(sums: dict) -> dict:
    counts = {k: int(sums[k] or 0) for k in ("conversations", "resolved", "handoff", "abandoned", "open", "messages")}
    feedback_up, feedback_down = int(sums["feedback_up"] or 0), int(sums["feedback_down"] or 0)
    sentiment = {label: int(sums[f"sentiment_{label}"] or 0) for label in ("negative", "neutral", "positive")}
    scored = sum(sentiment.values())
    cost = float(sums["cost_usd"] or 0)
    return {
        **counts,
        "deflection_rate": _div(counts["resolved"], counts["resolved"] + counts["handoff"] + counts["abandoned"]),
        "unanswered": int(sums["unanswered"] or 0),
        "feedback_up": feedback_up,
        "feedback_down": feedback_down,
        "satisfaction": _div(feedback_up, feedback_up + feedback_down),
        "sentiment": {
            **sentiment,
            "negative_share": _div(sentiment["negative"], scored),
            "mean": _div(sums["sentiment_weighted"], sums["sentiment_weight"]),
        },
        "cost_usd": cost,
        "cost_per_conversation_usd": _div(cost, counts["conversations"]),
        "latency_ms_p95": None if sums["latency_ms_p95"] is None else float(sums["latency_ms_p95"]),
    }


async def _sums(conn: AsyncConnection, *, tenant_id: str, ranges: dict[str, DateRange]) -> dict[str, dict]:
    """The KPI sums of several ranges in one index scan over their span."""
    select = ", ".join(
        f"{_filtered(expression, name)} AS {name}__{column}"
        for name in ranges
        for column, expression in _KPI_COLUMNS.items()
    )
    params: dict[str, object] = {"tenant_id": tenant_id}
    for name, span in ranges.items():
        params[f"{name}_start"], params[f"{name}_end"] = span.start, span.end
    params["lo"] = min(span.start for span in ranges.values())
    params["hi"] = max(span.end for span in ranges.values())
    cursor = await conn.execute(
        f"SELECT {select} FROM tenant_daily WHERE tenant_id = %(tenant_id)s AND day BETWEEN %(lo)s AND %(hi)s", params
    )
    row = await cursor.fetchone()
    return {name: {column: row[f"{name}__{column}"] for column in _KPI_COLUMNS} for name in ranges}


def _filtered(expression: str, name: str) -> str:
    """`sum(x)` -> `sum(x) FILTER (WHERE day in the range called name)`."""
    return f"{expression} FILTER (WHERE day BETWEEN %({name}_start)s AND %({name}_end)s)"


async def overview(conn: AsyncConnection, *, tenant_id: str, span: DateRange) -> dict:
    """The KPI tiles: this range's figures and the previous range's, to show the change."""
    sums = await _sums(conn, tenant_id=tenant_id, ranges={"current": span, "previous": span.previous()})
    return {"kpis": _kpis(sums["current"]), "previous": _kpis(sums["previous"])}


def bucket_starts(span: DateRange, interval: Interval) -> list[date]:
    """Every bucket that overlaps the range, by its first day (weeks start on Monday, as ISO weeks do)."""
    if interval == "day":
        first, step = span.start, None
    elif interval == "week":
        first, step = span.start - timedelta(days=span.start.weekday()), None
    else:
        first, step = span.start.replace(day=1), "month"
    starts, current = [], first
    while current <= span.end:
        starts.append(current)
        if step == "month":
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            current += timedelta(days=1 if interval == "day" else 7)
    return starts


_BUCKET = {
    "day": "day",
    # A Monday: date_bin counts 7-day bins from it.
    "week": "date_bin(INTERVAL '7 days', day::timestamp, TIMESTAMP '2000-01-03')::date",
    "month": "date_trunc('month', day::timestamp)::date",  # a timestamp without time zone: no session zone
}


async def timeseries(
    conn: AsyncConnection, *, tenant_id: str, metric: str, interval: Interval, span: DateRange
) -> list[dict]:
    """[{start, value}] for every bucket of the range (a bucket at an edge counts only the range's days)."""
    expression, bucket = METRICS[metric], _BUCKET[interval]
    cursor = await conn.execute(
        f"""SELECT {bucket} AS start, {expression} AS value FROM tenant_daily
             WHERE tenant_id = %s AND day BETWEEN %s AND %s GROUP BY 1""",
        (tenant_id, span.start, span.end),
    )
    values = {row["start"]: row["value"] for row in await cursor.fetchall()}
    missing = 0.0 if metric in _COUNTS else None
    return [{"start": start, "value": values.get(start, missing)} for start in bucket_starts(span, interval)]


async def top_intents(conn: AsyncConnection, *, tenant_id: str, span: DateRange, limit: int) -> list[dict]:
    """The intents with the most conversations in the range, with how each went. (intent_daily keeps each day's
    negative share, not the count of scored messages under it: the range's share weighs days by their messages.)"""
    cursor = await conn.execute(
        f"""SELECT intent, sum(conversations)::int AS conversations, sum(resolved)::int AS resolved,
                   sum(handoff)::int AS handoff, {_ratio("resolved", _CLOSED)} AS deflection_rate,
                   sum(unanswered)::int AS unanswered, {_ratio("feedback_up", "feedback_up + feedback_down")}
                   AS satisfaction,
                   sum(negative_share * messages)::float8 / nullif(sum(CASE WHEN negative_share IS NULL THEN 0
                       ELSE messages END), 0) AS negative_share,
                   sum(cost_usd)::float8 AS cost_usd
              FROM intent_daily WHERE tenant_id = %s AND day BETWEEN %s AND %s
             GROUP BY intent ORDER BY conversations DESC, intent LIMIT %s""",
        (tenant_id, span.start, span.end, limit),
    )
    return await cursor.fetchall()


async def unanswered(conn: AsyncConnection, *, tenant_id: str, span: DateRange, limit: int) -> list[dict]:
    """The questions asked most often in the range that got no confident answer."""
    cursor = await conn.execute(
        """SELECT question, min(example) AS example, sum(asked)::int AS asked, max(day) AS last_asked
             FROM unanswered_daily WHERE tenant_id = %s AND day BETWEEN %s AND %s
            GROUP BY question ORDER BY asked DESC, question LIMIT %s""",
        (tenant_id, span.start, span.end, limit),
    )
    return await cursor.fetchall()


@dataclass(frozen=True)
class Baseline:
    """The most expensive model of the catalog: what every answer would cost without routing."""

    model: str
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


async def costs(conn: AsyncConnection, *, tenant_id: str, span: DateRange, baseline: Baseline | None) -> dict:
    """What the range's answers cost, per day and in all, against the baseline model answering every one of them,
    and what the learned per-intent routes were projected to save and did save."""
    cursor = await conn.execute(
        """SELECT day, conversations, cost_usd::float8 AS cost_usd, input_tokens, output_tokens, answered_by_cache,
                  answered_by_kb, answered_by_local, answered_by_llm
             FROM tenant_daily WHERE tenant_id = %s AND day BETWEEN %s AND %s ORDER BY day""",
        (tenant_id, span.start, span.end),
    )
    days = await cursor.fetchall()
    llm = sum(day["answered_by_llm"] for day in days)
    free = {tier: sum(day[f"answered_by_{tier}"] for day in days) for tier in ("cache", "kb", "local")}
    if llm:
        per_answer = (sum(d["input_tokens"] for d in days) / llm, sum(d["output_tokens"] for d in days) / llm)
        tokens = "measured"
    else:
        per_answer, tokens = (ASSUMED_INPUT_TOKENS, ASSUMED_OUTPUT_TOKENS), "assumed"
    daily = []
    for day in days:
        free_answers = day["answered_by_cache"] + day["answered_by_kb"] + day["answered_by_local"]
        baseline_cost = None
        if baseline is not None:
            baseline_cost = baseline.cost(day["input_tokens"], day["output_tokens"]) + free_answers * baseline.cost(
                *per_answer
            )
        daily.append({"day": day["day"], "cost_usd": day["cost_usd"], "baseline_cost_usd": baseline_cost})
    cost = sum(day["cost_usd"] for day in days)
    conversations = sum(day["conversations"] for day in days)
    baseline_cost = None if baseline is None else sum(day["baseline_cost_usd"] for day in daily)
    saved = None if baseline_cost is None else baseline_cost - cost
    return {
        "cost_usd": cost,
        "conversations": conversations,
        "cost_per_conversation_usd": _div(cost, conversations),
        "answers": {**free, "llm": llm},
        "baseline": {
            "model": baseline.model if baseline else None,
            "cost_usd": baseline_cost,
            "cost_per_conversation_usd": _div(baseline_cost, conversations),
            "tokens_per_free_answer": tokens,
        },
        "saved_usd": saved,
        "saved_share": _div(saved, baseline_cost),
        "routing": await _routing_savings(conn, tenant_id=tenant_id, span=span),
        "daily": daily,
    }


async def _routing_savings(conn: AsyncConnection, *, tenant_id: str, span: DateRange) -> dict:
    """Projected: what the current routes were expected to save a day when computed. Realised: over the range, each
    routed intent's answers times the difference between its exploring answers' mean cost (the plain policy, same
    intent, same days) and its routed answers' mean cost; the route's baseline cost stands in when none explored."""
    cursor = await conn.execute(
        """SELECT intent, tier, explore_share, baseline_cost_usd, route_cost_usd, answers_per_day
             FROM routing_policy WHERE tenant_id = %s""",
        (tenant_id,),
    )
    routes = {row["intent"]: row for row in await cursor.fetchall()}
    projected = 0.0
    for route in routes.values():
        if None not in (route["baseline_cost_usd"], route["route_cost_usd"], route["answers_per_day"]):
            saving = route["baseline_cost_usd"] - route["route_cost_usd"]
            projected += saving * route["answers_per_day"] * (1 - route["explore_share"])
    # routing_daily: the usage roll-up the pipelines refresh (migration 0012); days are UTC whatever the session's zone.
    start = datetime.combine(span.start, time(), tzinfo=UTC)
    cursor = await conn.execute(
        """SELECT intent, routed_by, sum(answers)::int AS answers, (sum(cost_usd) / sum(answers))::float8 AS mean_cost
             FROM routing_daily WHERE tenant_id = %s AND day_start >= %s AND day_start < %s
            GROUP BY 1, 2""",
        (tenant_id, start, start + timedelta(days=span.days)),
    )
    by_intent: dict[str, dict[str, dict]] = {}
    for row in await cursor.fetchall():
        by_intent.setdefault(row["intent"], {})[row["routed_by"]] = row
    realised, routed_answers = 0.0, 0
    for intent, ways in by_intent.items():
        routed = ways.get("intent")
        if routed is None:
            continue
        routed_answers += routed["answers"]
        explored = ways.get("explore")
        plain = explored["mean_cost"] if explored else (routes.get(intent) or {}).get("baseline_cost_usd")
        if plain is not None:
            realised += routed["answers"] * (plain - routed["mean_cost"])
    return {
        "routes": len(routes),
        "projected_saving_usd_per_day": projected if routes else None,
        "realised_saving_usd": realised if routed_answers else None,
        "routed_answers": routed_answers,
    }


async def platform(conn: AsyncConnection, *, span: DateRange) -> list[dict]:
    """The operator's view: every tenant's figures over the range, busiest first."""
    cursor = await conn.execute(
        f"""SELECT d.tenant_id, t.name, sum(d.conversations)::int AS conversations, sum(d.messages)::int AS messages,
                   {_ratio("d.resolved", "d.resolved + d.handoff + d.abandoned")} AS deflection_rate,
                   {_ratio("d.feedback_up", "d.feedback_up + d.feedback_down")} AS satisfaction,
                   sum(d.unanswered)::int AS unanswered, sum(d.cost_usd)::float8 AS cost_usd,
                   {_ratio("d.cost_usd", "d.conversations")} AS cost_per_conversation_usd
              FROM tenant_daily d LEFT JOIN tenants t ON t.id = d.tenant_id
             WHERE d.day BETWEEN %s AND %s
             GROUP BY d.tenant_id, t.name ORDER BY conversations DESC, d.tenant_id""",
        (span.start, span.end),
    )
    return await cursor.fetchall()
