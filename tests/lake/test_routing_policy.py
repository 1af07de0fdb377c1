"""The routing-policy asset on generated outcomes where the right route is known: silver tables in a temp Delta
folder, tenants' policies in the embedded PostgreSQL, the asset materialized by Dagster, its routes read back the way
the router reads them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import psycopg
import pytest
from psycopg.rows import dict_row

from core import tenancy
from core.lake import MESSAGE_SENTIMENT, SILVER_CONVERSATIONS, SILVER_MESSAGES, Lake
from core.llm.intent_routes import load_routes
from core.llm.policy import TenantPolicy, put_policy
from models.routing.policy import TierFigures, answer_quality, choose
from pipelines.defs.routing.assets import routing_policy
from pipelines.resources import LakeResource, PostgresResource
from tests.lake.conftest import new_platform_database

TIERS = ["cache", "kb", "budget/small", "premium/large"]
COST = {"kb": 0.0, "budget/small": 0.0004, "premium/large": 0.006}


class Outcomes:
    """Conversations of one customer question and one answer each, with the rating or outcome that followed."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.conversations: list[dict] = []
        self.sentiment: list[dict] = []
        self.day = datetime.now(UTC).date() - timedelta(days=1)

    def add(self, tenant: str, intent: str, tier: str, *, answers: int, good: int, signal: str = "thumbs") -> None:
        """`good` of `answers` went well: thumbs up (else down), no handoff (else one), or a calm next message."""
        for index in range(answers):
            conversation = f"c_{uuid.uuid4().hex[:12]}"
            ok = index < good
            llm = "/" in tier
            base = {"tenant_id": tenant, "conversation_id": conversation, "date": self.day, "cache_hit": False}
            self.messages.append(
                base
                | {"message_id": f"m_{uuid.uuid4().hex[:12]}", "seq": 1, "role": "user", "tier": None, "model": None,
                   "intent": intent, "feedback": None, "cost_usd": None}
            )  # fmt: skip
            self.messages.append(
                base
                | {"message_id": f"m_{uuid.uuid4().hex[:12]}", "seq": 2, "role": "assistant",
                   "tier": "llm" if llm else tier, "model": tier if llm else None, "intent": None,
                   "feedback": ("up" if ok else "down") if signal == "thumbs" else None, "cost_usd": COST[tier]}
            )  # fmt: skip
            if signal == "sentiment":
                follow_up = f"m_{uuid.uuid4().hex[:12]}"
                self.messages.append(
                    base
                    | {"message_id": follow_up, "seq": 3, "role": "user", "tier": None, "model": None,
                       "intent": None, "feedback": None, "cost_usd": None}
                )  # fmt: skip
                self.sentiment.append(
                    {"tenant_id": tenant, "message_id": follow_up, "label": "positive" if ok else "negative"}
                )
            self.conversations.append(
                {"tenant_id": tenant, "conversation_id": conversation, "date": self.day,
                 "handoff": (not ok) if signal == "handoff" else False}
            )  # fmt: skip

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        sentiment = pl.DataFrame(
            self.sentiment, schema={"tenant_id": pl.String, "message_id": pl.String, "label": pl.String}
        )
        text, day = pl.String, pl.Date
        messages = pl.DataFrame(
            self.messages,
            schema={"tenant_id": text, "conversation_id": text, "date": day, "cache_hit": pl.Boolean,
                    "message_id": text, "seq": pl.Int32, "role": text, "tier": text, "model": text, "intent": text,
                    "feedback": text, "cost_usd": pl.Float64},
        )  # fmt: skip
        conversations = pl.DataFrame(
            self.conversations,
            schema={"tenant_id": text, "conversation_id": text, "date": day, "handoff": pl.Boolean},
        )
        return messages, conversations, sentiment

    def write(self, lake: Lake) -> None:
        messages, conversations, sentiment = self.frames()
        lake.overwrite(SILVER_MESSAGES, messages.to_arrow())
        lake.overwrite(SILVER_CONVERSATIONS, conversations.to_arrow())
        lake.overwrite(MESSAGE_SENTIMENT, sentiment.to_arrow())


async def _tenants(url: str, tiers_by_name: dict[str, list[str]]) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn, conn.transaction():
        ids = {}
        for name, tiers in tiers_by_name.items():
            tenant = await tenancy.create_tenant(conn, name=f"{name}-{uuid.uuid4().hex[:6]}", actor="test")
            await put_policy(conn, tenant_id=tenant.id, policy=TenantPolicy(tiers=tiers), actor="test")
            ids[name] = tenant.id
        return ids


async def _routes(url: str, tenant_id: str) -> dict:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        return await load_routes(conn, tenant_id=tenant_id)


def materialize(lake_root, url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [routing_policy],
        resources={"lake": LakeResource(root=str(lake_root)), "postgres": PostgresResource(url=url)},
    )


def test_traffic_moves_to_a_cheaper_tier_only_where_its_quality_holds(pg_server, tmp_path):
    url = new_platform_database(pg_server, f"routes_{uuid.uuid4().hex[:8]}")
    ids = asyncio.run(_tenants(url, {"acme": TIERS, "zeta": TIERS, "narrow": ["cache", "kb", "premium/large"]}))
    acme, zeta, narrow = ids["acme"], ids["zeta"], ids["narrow"]
    outcomes = Outcomes()
    # acme, card_arrival: the knowledge base answers as well as the premium model -> kb.
    outcomes.add(acme, "card_arrival", "kb", answers=120, good=116)
    outcomes.add(acme, "card_arrival", "premium/large", answers=60, good=59)
    # acme, refund: only the premium model answers well -> it stays there.
    outcomes.add(acme, "refund", "kb", answers=80, good=36)
    outcomes.add(acme, "refund", "budget/small", answers=80, good=52)
    outcomes.add(acme, "refund", "premium/large", answers=80, good=76)
    # acme, top_up: the budget model holds, read from handoffs; the kb does not.
    outcomes.add(acme, "top_up", "kb", answers=60, good=30, signal="handoff")
    outcomes.add(acme, "top_up", "budget/small", answers=100, good=96, signal="handoff")
    outcomes.add(acme, "top_up", "premium/large", answers=60, good=58, signal="handoff")
    # acme, pin: the kb looks perfect on too few answers -> nothing to compare, no route: the policy stays in charge.
    outcomes.add(acme, "pin", "kb", answers=12, good=12)
    outcomes.add(acme, "pin", "premium/large", answers=60, good=57)
    # zeta asks about the same intent with the opposite result, read from the customers' next message.
    outcomes.add(zeta, "card_arrival", "kb", answers=100, good=40, signal="sentiment")
    outcomes.add(zeta, "card_arrival", "premium/large", answers=100, good=95, signal="sentiment")
    # narrow's policy lists no budget model: a fine budget record does not make a route to it.
    outcomes.add(narrow, "refund", "budget/small", answers=100, good=99)
    outcomes.add(narrow, "refund", "premium/large", answers=100, good=97)
    outcomes.add(narrow, "refund", "kb", answers=100, good=50)
    lake_root = tmp_path / "lake"
    outcomes.write(Lake(str(lake_root)))

    result = materialize(lake_root, url)
    assert result.success
    metadata = result.asset_materializations_for_node("routing__policy")[0].metadata
    assert metadata["routes"].value == 5 and metadata["routes_to_a_cheaper_tier"].value == 2

    acme_routes = asyncio.run(_routes(url, acme))
    assert {intent: route.tier for intent, route in acme_routes.items()} == {
        "card_arrival": "kb",
        "refund": "premium/large",
        "top_up": "budget/small",
    }
    card = acme_routes["card_arrival"]
    assert card.samples == 120 and card.quality == pytest.approx(116 / 120, abs=1e-4)
    assert card.baseline_tier == "premium/large" and card.baseline_cost_usd == pytest.approx(COST["premium/large"])
    assert card.route_cost_usd == 0.0 and card.answers_per_day == pytest.approx(180 / 30)
    assert card.explore_share == pytest.approx(0.1)
    zeta_routes = asyncio.run(_routes(url, zeta))
    assert {intent: route.tier for intent, route in zeta_routes.items()} == {"card_arrival": "premium/large"}
    narrow_routes = asyncio.run(_routes(url, narrow))
    assert {intent: route.tier for intent, route in narrow_routes.items()} == {"refund": "premium/large"}

    # Materializing again on the same evidence gives the same set (replaced, not added to).
    assert materialize(lake_root, url).success
    assert asyncio.run(_routes(url, acme)).keys() == acme_routes.keys()


def test_the_answer_quality_reads_thumbs_first_then_outcomes():
    outcomes = Outcomes()
    outcomes.add("t1", "card", "kb", answers=4, good=3)
    outcomes.add("t1", "card", "budget/small", answers=4, good=1, signal="handoff")
    outcomes.add("t1", "card", "premium/large", answers=5, good=3, signal="sentiment")
    answers = answer_quality(*outcomes.frames())
    by_tier = answers.group_by("tier").agg(pl.col("quality").sum(), pl.len()).sort("tier")
    assert by_tier.to_dicts() == [
        {"tier": "budget/small", "quality": 1.0, "len": 4},  # handed off: 0; not: 1 (no next message to read)
        {"tier": "kb", "quality": 3.0, "len": 4},  # thumbs
        {"tier": "premium/large", "quality": 3 * 1.0 + 2 * 0.5, "len": 5},  # no handoff, but a negative reply: 0.5
    ]
    assert set(answers["intent"]) == {"card"}


def test_a_cheaper_tier_needs_its_lower_bound_within_the_tolerance():
    best = TierFigures("premium/large", 200, 0.95, 0.006)
    close_and_sure = TierFigures("kb", 400, 0.93, 0.0)
    close_but_thin = TierFigures("budget/small", 30, 0.93, 0.0004)
    assert choose([best, close_and_sure], tolerance=0.05) == (close_and_sure, best)
    assert choose([best, close_but_thin], tolerance=0.05) == (best, best)
    assert choose([best, close_and_sure], tolerance=0.0) == (best, best)
    assert choose([best], tolerance=0.05) is None
    # A tier that looks better on too few answers: no route on what is known so far.
    promising = TierFigures("premium/xl", 12, 0.99, 0.02)
    assert choose([best, close_and_sure, promising], tolerance=0.05) is None
    assert choose([best, close_and_sure, TierFigures("premium/xl", 12, 0.5, 0.02)], tolerance=0.05) == (
        close_and_sure,
        best,
    )
