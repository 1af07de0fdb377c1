"""Conversation summaries by the router's paid tiers, for tenants whose policy allows it (`llm_summaries`).

The tenant's policy, strategy and budget choose the chain exactly as they do for answers (core/llm/strategy.py), with
the month's spend re-checked after every call, so a batch cannot run past the soft or hard limit. Each call is
metered like an answer (a `usage` row with tier `summary`, and its outbox event). A conversation whose call fails, or
that the budget or the per-run cap leaves out, keeps its extractive summary and is tried again in a later run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from core.llm.catalog import Catalog, build_providers
from core.llm.policy import get_policy
from core.llm.router import NoRouteAvailable, Router
from core.llm.strategy import paid_chain
from core.metrics import UsageRecord, record_usage, spent_this_month
from models.summarize import Turn
from models.summarize.llm import clean, summary_prompt

SUMMARY_TIER = "summary"
MAX_TOKENS = 120
CONCURRENCY = 4


@dataclass(frozen=True)
class Candidate:
    conversation_id: str
    turns: Sequence[Turn]
    outcome: str


@dataclass(frozen=True)
class Summarized:
    text: str
    method: str  # provider/model


class LlmSummarizer:
    def __init__(self, *, db_url: str, catalog: Catalog, max_per_run: int = 200) -> None:
        self.db_url = db_url
        self.catalog = catalog
        self.max_per_run = max_per_run

    def _estimate(self, route, messages) -> float:
        """At most what one call may cost: the prompt at four characters a token, and every output token."""
        model = self.catalog.model(route.provider, route.model)
        prompt_tokens = sum(len(m.content) for m in messages) // 4 + 1
        return model.cost(input_tokens=prompt_tokens, output_tokens=MAX_TOKENS) if model else 0.0

    def summarize(self, *, tenant_id: str, candidates: Sequence[Candidate]) -> dict[str, Summarized]:
        """Summaries for as many candidates as the tenant's policy and budget allow (none if it does not allow
        LLM summaries), by conversation id."""
        return asyncio.run(self._summarize(tenant_id, list(candidates)[: self.max_per_run]))

    async def _summarize(self, tenant_id: str, candidates: list[Candidate]) -> dict[str, Summarized]:
        if not candidates:
            return {}
        async with await AsyncConnection.connect(self.db_url, autocommit=True, row_factory=dict_row) as conn:
            policy = await get_policy(conn, tenant_id=tenant_id)
            if not policy.llm_summaries:
                return {}
            # What the month has cost, and what the calls in flight may still cost: a call starts only if both
            # together leave the budget room for it, so concurrent calls cannot overrun it together.
            spent = [await spent_this_month(conn, tenant_id=tenant_id)]
            reserved = [0.0]
            providers = build_providers(self.catalog)
            router = Router(providers=providers, catalog=self.catalog)
            written = asyncio.Lock()
            slots = asyncio.Semaphore(CONCURRENCY)
            done: dict[str, Summarized] = {}

            async def one(candidate: Candidate) -> None:
                messages = summary_prompt(candidate.turns, outcome=candidate.outcome)
                async with slots:
                    async with written:
                        chain = paid_chain(
                            policy=policy, catalog=self.catalog, spent_this_month_usd=spent[0] + reserved[0]
                        ).chain
                        if not chain:
                            return  # the budget is reached: extractive until next month
                        estimate = self._estimate(chain[0], messages)
                        reserved[0] += estimate
                    try:
                        routed = await router.complete(
                            chain=chain, messages=messages, max_tokens=MAX_TOKENS, temperature=0.0
                        )
                    except NoRouteAvailable:
                        async with written:
                            reserved[0] -= estimate
                        return
                    usage = UsageRecord(
                        tier=SUMMARY_TIER,
                        outcome="fallback" if routed.skipped else "ok",
                        provider=routed.route.provider,
                        model=routed.route.model,
                        input_tokens=routed.usage.input_tokens,
                        output_tokens=routed.usage.output_tokens,
                        cost_usd=routed.cost_usd,
                        latency_ms=routed.latency_ms,
                        conversation_id=candidate.conversation_id,
                    )
                    async with written:  # one connection: metering writes go one at a time
                        await record_usage(conn, tenant_id=tenant_id, record=usage)
                        spent[0] += routed.cost_usd
                        reserved[0] -= estimate
                    if text := clean(routed.text):
                        done[candidate.conversation_id] = Summarized(text, str(routed.route))

            try:
                await asyncio.gather(*(one(candidate) for candidate in candidates))
            finally:
                for provider in providers.values():
                    await provider.aclose()
            return done
