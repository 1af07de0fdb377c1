"""The routing policy: per tenant and intent, the cheapest tier whose answer quality holds (models/routing/policy.py),
learnt from the last `window_days` of silver's answers and their outcomes, and written to PostgreSQL's
routing_policy, which the router reads (core/llm/intent_routes.py). The cost loop closes here.

A tenant's set is replaced whole, in one transaction, for every tenant with answers in the window; a tenant without
any keeps the routes it had (no evidence is not evidence against them)."""

import asyncio
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import psycopg
from psycopg.rows import dict_row

from core.lake import MESSAGE_SENTIMENT, SILVER_CONVERSATIONS, SILVER_MESSAGES, Lake
from core.llm.intent_routes import IntentRoute, replace_routes
from core.llm.policy import get_policy
from models.routing.policy import EXPLORE_SHARE, MIN_SAMPLES, Z, answer_quality, learn_routes
from pipelines.keys import CONVERSATIONS, MESSAGES, ROUTING_POLICY, SENTIMENT
from pipelines.resources import LakeResource, PostgresResource

MESSAGE_COLUMNS = [
    "tenant_id", "conversation_id", "message_id", "seq", "date", "role", "tier", "model", "intent", "feedback",
    "cost_usd", "cache_hit",
]  # fmt: skip


class RoutingPolicyConfig(dg.Config):
    window_days: int = 30
    min_samples: int = MIN_SAMPLES
    explore_share: float = EXPLORE_SHARE
    z: float = Z


def _window(lake: Lake, *, since) -> tuple[pl.DataFrame | None, pl.DataFrame | None, pl.DataFrame | None]:
    """The window's messages, and the conversations and sentiment of those messages only (Lake.scan: polars prunes
    the files it need not open)."""
    messages = lake.scan(SILVER_MESSAGES)
    if messages is None:
        return None, None, None
    messages = messages.filter(pl.col("date") >= since).select(MESSAGE_COLUMNS).collect()

    def of_window(table, columns, key):
        frame = lake.scan(table)
        if frame is None:
            return None
        return frame.select(columns).join(messages.lazy().select(key).unique(), on=key, how="semi").collect()

    conversations = of_window(
        SILVER_CONVERSATIONS, ["tenant_id", "conversation_id", "handoff"], ["tenant_id", "conversation_id"]
    )
    sentiment = of_window(MESSAGE_SENTIMENT, ["tenant_id", "message_id", "label"], ["tenant_id", "message_id"])
    return messages, conversations, sentiment


async def _policies(dsn: str, tenants: list[str]) -> dict[str, tuple[list[str], float]]:
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        found = {}
        for tenant in tenants:
            policy = await get_policy(conn, tenant_id=tenant)
            found[tenant] = (policy.tiers, policy.route_tolerance)
        return found


async def _replace(dsn: str, routes: dict[str, list[IntentRoute]]) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        for tenant, tenant_routes in routes.items():
            async with conn.transaction():
                await replace_routes(conn, tenant_id=tenant, routes=tenant_routes)


def compute_routing_policy(lake: Lake, dsn: str, config: RoutingPolicyConfig, *, today=None) -> dict:
    today = today or datetime.now(UTC).date()
    since = today - timedelta(days=config.window_days - 1)
    messages, conversations, sentiment = _window(lake, since=since)
    if messages is None or conversations is None or not messages.height:
        return {"tenants": 0, "routes": 0, "answers": 0, "moved": {}}
    answers = answer_quality(messages, conversations, sentiment)
    tenants = sorted(set(answers["tenant_id"].to_list()))
    policies = asyncio.run(_policies(dsn, tenants))
    routes = learn_routes(
        answers,
        policies=policies,
        days=config.window_days,
        min_samples=config.min_samples,
        explore_share=config.explore_share,
        z=config.z,
    )
    asyncio.run(_replace(dsn, routes))
    moved = {
        tenant: sum(route.tier != route.baseline_tier for route in tenant_routes)
        for tenant, tenant_routes in routes.items()
    }
    return {
        "tenants": len(routes),
        "routes": sum(len(r) for r in routes.values()),
        "answers": answers.height,
        "moved": moved,
    }


@dg.asset(
    key=ROUTING_POLICY,
    deps=[MESSAGES, CONVERSATIONS, SENTIMENT],
    group_name="routing",
    kinds={"postgres"},
    description="Per tenant and intent, the cheapest tier whose measured answer quality (thumbs, no handoff, the "
    "customer's next message not negative) stays within the tenant's route_tolerance of the best tier, with a minimum "
    "of answers and an exploration share: the routing_policy table the router reads.",
)
def routing_policy(config: RoutingPolicyConfig, lake: LakeResource, postgres: PostgresResource) -> dg.MaterializeResult:
    result = compute_routing_policy(lake.lake(), postgres.dsn, config)
    return dg.MaterializeResult(
        metadata={
            "tenants": result["tenants"],
            "routes": result["routes"],
            "answers_measured": result["answers"],
            "routes_to_a_cheaper_tier": sum(result["moved"].values()),
        }
    )
