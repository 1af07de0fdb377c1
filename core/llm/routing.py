"""Everything the router needs to know about a tenant for one turn, in one query: its policy, what it has spent this
month and in this conversation, the state of its answer cache, and how many questions the conversation already had."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from psycopg import AsyncConnection

from core.llm.cache import CacheState
from core.llm.policy import DEFAULT_POLICY, TenantPolicy
from core.metrics import CONVERSATION_SPEND, MONTH_SPEND


@dataclass(frozen=True)
class RoutingContext:
    policy: TenantPolicy
    spent_this_month_usd: float = 0.0
    conversation_cost_usd: float = 0.0
    cache: CacheState = field(default_factory=CacheState)
    earlier_questions: int = 0  # the customer's messages in this conversation before the current one


# Run before the current question is recorded (pipelined with it), so the count is of the earlier ones.
READ = f"""
SELECT (SELECT policy::text FROM tenant_policies WHERE tenant_id = %(tenant_id)s) AS policy,
       {MONTH_SPEND} AS month_spend,
       {CONVERSATION_SPEND} AS conversation_spend,
       coalesce(state.kb_version, 0) AS kb_version,
       coalesce(state.epoch, 0) AS epoch,
       coalesce((SELECT max(id) FROM answer_cache WHERE tenant_id = %(tenant_id)s), 0) AS newest_id,
       (SELECT count(*) FROM messages
         WHERE tenant_id = %(tenant_id)s AND conversation_id = %(conversation_id)s AND role = 'user')
           AS earlier_questions
  FROM (SELECT 1) AS one LEFT JOIN answer_cache_state AS state ON state.tenant_id = %(tenant_id)s
"""


@lru_cache(maxsize=1024)
def _policy(stored: str) -> TenantPolicy:
    # Policies change rarely and every turn reads one: parse each distinct document once.
    return TenantPolicy.model_validate_json(stored)


def read_params(*, tenant_id: str, conversation_id: str | None) -> dict[str, str | None]:
    return {"tenant_id": tenant_id, "conversation_id": conversation_id}


def from_row(row: dict) -> RoutingContext:
    return RoutingContext(
        policy=_policy(row["policy"]) if row["policy"] is not None else DEFAULT_POLICY,
        spent_this_month_usd=row["month_spend"],
        conversation_cost_usd=row["conversation_spend"],
        cache=CacheState(kb_version=row["kb_version"], epoch=row["epoch"], newest_id=row["newest_id"]),
        earlier_questions=row["earlier_questions"],
    )


async def read_context(conn: AsyncConnection, *, tenant_id: str, conversation_id: str | None) -> RoutingContext:
    cursor = await conn.execute(READ, read_params(tenant_id=tenant_id, conversation_id=conversation_id))
    return from_row(await cursor.fetchone())
