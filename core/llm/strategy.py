"""From a tenant's policy and spend to the chain of paid routes the router may try, in order.

- `cost`: routes whose expected quality reaches the tenant's bar, cheapest first, then the others, cheapest first
  (a fallback that answers less well still beats no answer);
- `quality`: best expected quality first;
- `latency`: fastest observed first (routes never measured keep the policy's order, after the measured ones).

Budgets steer rather than only block: past the soft limit only the cheapest route remains; past the hard limit, or past
the conversation's own cap, no paid route does, and the free tiers answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import AsyncConnection

from core.llm.catalog import Catalog
from core.llm.policy import TenantPolicy, get_policy
from core.llm.router import Route
from core.metrics import spent_this_month


@dataclass(frozen=True)
class Decision:
    chain: list[Route]
    reason: str  # why the chain is what it is, for the reply's metadata and the logs


def paid_chain(
    *,
    policy: TenantPolicy,
    catalog: Catalog,
    spent_this_month_usd: float,
    conversation_cost_usd: float = 0.0,
    latency_ms: Mapping[Route, float] | None = None,
    prefer: Route | None = None,
) -> Decision:
    """`prefer` (a per-intent route) goes first when the budget leaves it in the chain."""
    routes = [Route(*tier.split("/", 1)) for tier in policy.paid_tiers]
    routes = [route for route in routes if catalog.model(route.provider, route.model) is not None]
    if not routes:
        return Decision([], "the policy has no paid tier")
    if (
        policy.max_cost_per_conversation_usd is not None
        and conversation_cost_usd >= policy.max_cost_per_conversation_usd
    ):
        return Decision([], f"this conversation reached its cap of ${policy.max_cost_per_conversation_usd}")
    budget = policy.budget
    if budget is not None:
        hard = budget.hard_limit_usd or budget.monthly_usd
        soft = budget.soft_limit_usd or budget.monthly_usd
        if spent_this_month_usd >= hard:
            return Decision([], f"the monthly hard limit of ${hard} is reached")

    def price(route: Route) -> float:
        return catalog.model(route.provider, route.model).blended_per_mtok

    def quality(route: Route) -> float:
        return catalog.model(route.provider, route.model).quality

    if policy.strategy == "quality":
        ordered = sorted(routes, key=lambda r: (-quality(r), price(r)))
    elif policy.strategy == "latency":
        measured = latency_ms or {}
        ordered = sorted(routes, key=lambda r: (r not in measured, measured.get(r, 0.0)))
    else:
        good = sorted((r for r in routes if quality(r) >= policy.quality_bar), key=price)
        ordered = good + sorted((r for r in routes if r not in good), key=price)
    if budget is not None and spent_this_month_usd >= soft:
        return Decision([min(routes, key=price)], f"past the soft limit of ${soft}: the cheapest paid tier only")
    if prefer in ordered:
        return Decision(
            [prefer] + [r for r in ordered if r != prefer], f"intent route, then the {policy.strategy} strategy"
        )
    return Decision(ordered, f"{policy.strategy} strategy")


async def decide(
    conn: AsyncConnection, *, tenant_id: str, catalog: Catalog, conversation_cost_usd: float = 0.0
) -> Decision:
    """The tenant's paid chain right now: its stored policy against what it has spent this month."""
    policy = await get_policy(conn, tenant_id=tenant_id)
    spent = await spent_this_month(conn, tenant_id=tenant_id)
    return paid_chain(
        policy=policy, catalog=catalog, spent_this_month_usd=spent, conversation_cost_usd=conversation_cost_usd
    )
