"""The analytics API on the real embedded PostgreSQL: two tenants' daily figures in the metrics store, every endpoint
read with each tenant's keys, the figures checked against sums computed here from the rows written, and neither
tenant ever seeing the other's."""

from __future__ import annotations

import asyncio
import random
import secrets
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from analytics_api.app import create_app
from cli.asgi import Platform
from core import metrics, tenancy, widgets
from core.llm.intent_routes import IntentRoute, replace_routes
from core.metrics import INTENT_DAILY_COLUMNS, TENANT_DAILY_COLUMNS, UsageRecord, record_usage
from core.schemas import Role
from tests.conftest import ADMIN_TOKEN, bearer

END = date(2026, 11, 30)
DAYS = 60
PROVIDERS = """
providers:
  budget:
    protocol: openai
    base_url: http://127.0.0.1:9/v1
    models:
      small: {input_per_mtok: 0.15, output_per_mtok: 0.60, context_tokens: 128000, quality: 0.6}
  premium:
    protocol: openai
    base_url: http://127.0.0.1:9/v1
    models:
      large: {input_per_mtok: 2.50, output_per_mtok: 10.00, context_tokens: 128000, quality: 0.9}
"""
WIDGET_ORIGIN = "https://shop.example"
RANGE = {"from": str(END - timedelta(days=29)), "to": str(END)}


def _days(rows: list[dict], start: date, end: date) -> list[dict]:
    return [row for row in rows if start <= row["day"] <= end]


def daily_rows(tenant_id: str, *, seed: int, intents: list[str]) -> tuple[list[dict], list[dict], list[dict]]:
    """A tenant's tenant_daily, intent_daily and unanswered_daily rows over DAYS days ending END."""
    rng = random.Random(seed)
    tenant_rows, intent_rows, unanswered_rows = [], [], []
    for offset in range(DAYS):
        day = END - timedelta(days=offset)
        if offset % 9 == 4:
            continue  # a quiet day: no row at all
        row = {column: 0 for column in TENANT_DAILY_COLUMNS}
        conversations = rng.randint(20, 80)
        resolved = rng.randint(0, conversations // 2)
        handoff = rng.randint(0, (conversations - resolved) // 2)
        abandoned = rng.randint(0, conversations - resolved - handoff)
        llm, kb, cache = rng.randint(5, 30), rng.randint(5, 30), rng.randint(0, 10)
        row |= {
            "tenant_id": tenant_id,
            "day": day,
            "conversations": conversations,
            "resolved": resolved,
            "handoff": handoff,
            "abandoned": abandoned,
            "open": conversations - resolved - handoff - abandoned,
            "messages": conversations * 4,
            "unanswered": rng.randint(0, 9),
            "feedback_up": rng.randint(0, 20),
            "feedback_down": rng.randint(0, 8),
            "sentiment_negative": rng.randint(0, 10),
            "sentiment_neutral": rng.randint(0, 30),
            "sentiment_positive": rng.randint(1, 20),
            "sentiment_mean": round(rng.uniform(-0.3, 0.6), 4),
            "answered_by_llm": llm,
            "answered_by_kb": kb,
            "answered_by_cache": cache,
            "input_tokens": llm * 600,
            "output_tokens": llm * 100,
            "cost_usd": round(llm * (600 * 0.15 + 100 * 0.6) / 1e6, 8),
            "latency_ms_p95": rng.uniform(80, 400),
        }
        tenant_rows.append(row)
        for rank, intent in enumerate(intents):
            intent_row = {column: 0 for column in INTENT_DAILY_COLUMNS}
            share = conversations // (rank + 2)
            intent_row |= {
                "tenant_id": tenant_id,
                "day": day,
                "intent": intent,
                "conversations": share,
                "resolved": share // 2,
                "handoff": share // 4,
                "messages": share * 4,
                "feedback_up": rank + 1,
                "feedback_down": 1,
                "negative_share": 0.1 * (rank + 1),
                "cost_usd": 0.001 * share,
            }
            intent_rows.append(intent_row)
        for question, asked in ((f"where is my {intents[0]} refund", 3), (f"can i change my {intents[1]}", 1)):
            unanswered_rows.append(
                {"tenant_id": tenant_id, "day": day, "question": question, "example": question.capitalize() + "?",
                 "asked": asked}
            )  # fmt: skip
    return tenant_rows, intent_rows, unanswered_rows


async def store_history(conn, *, tenant_id: str, seed: int, intents: list[str]) -> dict:
    """Write a tenant's DAYS days of daily rows to the metrics store; returns them."""
    tenant_rows, intent_rows, unanswered_rows = daily_rows(tenant_id, seed=seed, intents=intents)
    await metrics.replace_days(
        conn,
        tenant_days=[(tenant_id, row["day"]) for row in tenant_rows],
        tenant_rows=tenant_rows,
        intent_rows=intent_rows,
        unanswered_rows=unanswered_rows,
    )
    return {"rows": tenant_rows, "intent_rows": intent_rows, "intents": intents, "unanswered": unanswered_rows}


async def _setup(url: str) -> dict:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn, conn.transaction():
        world = {}
        for name, seed, intents in (("a", 1, ["card_arrival", "top_up"]), ("b", 2, ["lost_luggage", "seat_upgrade"])):
            tenant = await tenancy.create_tenant(conn, name=f"analytics-{name}-{secrets.token_hex(4)}", actor="test")
            keys = {}
            for role in Role:
                _, keys[role.value] = await tenancy.create_api_key(
                    conn, tenant_id=tenant.id, role=role, name=str(role), actor="test"
                )
            widget = await widgets.create_widget_key(
                conn, tenant_id=tenant.id, name="site", allowed_origins=[WIDGET_ORIGIN], actor="test"
            )
            keys["widget"] = widget.key
            history = await store_history(conn, tenant_id=tenant.id, seed=seed, intents=intents)
            world[name] = {"id": tenant.id, "name": tenant.name, "keys": keys, **history}
        return world


@pytest.fixture(scope="module")
def world(settings, tmp_path_factory):
    providers = tmp_path_factory.mktemp("analytics") / "providers.yaml"
    providers.write_text(PROVIDERS)
    app = create_app(settings.model_copy(update={"providers_file": providers}))
    data = asyncio.run(_setup(settings.postgres_url))
    with TestClient(app) as client:
        yield client, data


def get(client, path: str, key: str, **params) -> dict:
    response = client.get(path, params={**RANGE, **params}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def sums(rows: list[dict], start: date, end: date) -> dict:
    chosen = _days(rows, start, end)
    total = {column: sum(row[column] for row in chosen) for column in ("conversations", "resolved", "handoff",
             "abandoned", "unanswered", "feedback_up", "feedback_down", "cost_usd")}  # fmt: skip
    total["closed"] = total["resolved"] + total["handoff"] + total["abandoned"]
    return total


def test_the_overview_adds_up_the_range_and_the_range_before(world):
    client, data = world
    a = data["a"]
    body = get(client, "/v1/analytics/overview", a["keys"]["owner"])
    start, end = date.fromisoformat(RANGE["from"]), END
    expected = sums(a["rows"], start, end)
    kpis = body["kpis"]
    assert body["from"] == RANGE["from"] and body["to"] == RANGE["to"] and body["days"] == 30
    assert body["store"] == "postgresql" and body["tenant_id"] == a["id"] and body["tenant_name"] == a["name"]
    assert kpis["conversations"] == expected["conversations"] and kpis["unanswered"] == expected["unanswered"]
    assert kpis["deflection_rate"] == pytest.approx(expected["resolved"] / expected["closed"])
    up, down = expected["feedback_up"], expected["feedback_down"]
    assert kpis["satisfaction"] == pytest.approx(up / (up + down))
    assert kpis["cost_usd"] == pytest.approx(expected["cost_usd"])
    assert kpis["cost_per_conversation_usd"] == pytest.approx(expected["cost_usd"] / expected["conversations"])
    chosen = _days(a["rows"], start, end)
    weight = sum(r["sentiment_negative"] + r["sentiment_neutral"] + r["sentiment_positive"] for r in chosen)
    weighted = sum(
        r["sentiment_mean"] * (r["sentiment_negative"] + r["sentiment_neutral"] + r["sentiment_positive"])
        for r in chosen
    )
    assert kpis["sentiment"]["mean"] == pytest.approx(weighted / weight)
    assert kpis["latency_ms_p95"] == pytest.approx(max(r["latency_ms_p95"] for r in chosen))
    previous = sums(a["rows"], start - timedelta(days=30), start - timedelta(days=1))
    assert body["previous"]["conversations"] == previous["conversations"]


def test_a_time_series_has_every_bucket_and_ratios_from_sums(world):
    client, data = world
    a = data["a"]
    start = date.fromisoformat(RANGE["from"])
    daily = get(client, "/v1/analytics/timeseries", a["keys"]["analyst"], metric="conversations", interval="day")
    assert [p["start"] for p in daily["points"]] == [str(start + timedelta(days=i)) for i in range(30)]
    by_day = {row["day"]: row["conversations"] for row in a["rows"]}
    assert [p["value"] for p in daily["points"]] == [float(by_day.get(start + timedelta(days=i), 0)) for i in range(30)]

    weekly = get(client, "/v1/analytics/timeseries", a["keys"]["viewer"], metric="deflection_rate", interval="week")
    for point in weekly["points"]:
        monday = date.fromisoformat(point["start"])
        assert monday.weekday() == 0
        week = sums(a["rows"], max(monday, start), min(monday + timedelta(days=6), END))
        assert point["value"] == pytest.approx(week["resolved"] / week["closed"] if week["closed"] else None)

    monthly = get(client, "/v1/analytics/timeseries", a["keys"]["owner"], metric="cost_usd", interval="month")
    assert [p["start"] for p in monthly["points"]] == ["2026-11-01"]
    assert monthly["points"][0]["value"] == pytest.approx(sums(a["rows"], start, END)["cost_usd"])


def test_intents_and_unanswered_questions_are_the_tenants_own(world):
    client, data = world
    a, b = data["a"], data["b"]
    intents = get(client, "/v1/analytics/intents", a["keys"]["owner"], limit=5)["intents"]
    assert [row["intent"] for row in intents] == a["intents"]  # the first takes the larger share each day
    start = date.fromisoformat(RANGE["from"])
    top = [row for row in _days(a["intent_rows"], start, END) if row["intent"] == a["intents"][0]]
    assert intents[0]["conversations"] == sum(row["conversations"] for row in top)
    questions = get(client, "/v1/analytics/unanswered", a["keys"]["owner"])["questions"]
    assert [q["question"] for q in questions] == [f"where is my {a['intents'][0]} refund", "can i change my top_up"]
    asked = [row["asked"] for row in _days(a["unanswered"], start, END) if row["question"] == questions[0]["question"]]
    assert questions[0]["asked"] == sum(asked) and questions[0]["last_asked"] == str(END)
    for path in ("/v1/analytics/intents", "/v1/analytics/unanswered", "/v1/analytics/overview", "/v1/analytics/costs"):
        text = client.get(path, params=RANGE, headers=bearer(a["keys"]["owner"])).text
        assert b["id"] not in text and not any(intent in text for intent in b["intents"])


def test_costs_compare_with_the_most_expensive_model_answering_everything(world):
    client, data = world
    a = data["a"]
    body = get(client, "/v1/analytics/costs", a["keys"]["owner"])
    start = date.fromisoformat(RANGE["from"])
    chosen = _days(a["rows"], start, END)
    llm = sum(r["answered_by_llm"] for r in chosen)
    per_answer_in = sum(r["input_tokens"] for r in chosen) / llm
    per_answer_out = sum(r["output_tokens"] for r in chosen) / llm
    free = sum(r["answered_by_kb"] + r["answered_by_cache"] for r in chosen)
    premium = (sum(r["input_tokens"] for r in chosen) + free * per_answer_in) * 2.5 / 1e6 + (
        sum(r["output_tokens"] for r in chosen) + free * per_answer_out
    ) * 10.0 / 1e6
    assert body["baseline"]["model"] == "premium/large" and body["baseline"]["tokens_per_free_answer"] == "measured"
    assert body["baseline"]["cost_usd"] == pytest.approx(premium)
    assert body["saved_usd"] == pytest.approx(premium - body["cost_usd"]) and 0 < body["saved_share"] < 1
    assert body["answers"] == {
        "cache": sum(r["answered_by_cache"] for r in chosen),
        "kb": sum(r["answered_by_kb"] for r in chosen),
        "local": 0,
        "llm": llm,
    }
    assert len(body["daily"]) == len(chosen)


def test_routing_savings_projected_from_the_routes_and_realised_from_usage(world, settings):
    client, data = world
    b = data["b"]
    route = IntentRoute(
        "lost_luggage", "kb", samples=200, explore_share=0.2, quality=0.9, baseline_tier="premium/large",
        baseline_quality=0.92, baseline_cost_usd=0.004, route_cost_usd=0.0, answers_per_day=50.0,
    )  # fmt: skip

    async def write() -> None:
        connect = psycopg.AsyncConnection.connect(settings.postgres_url, row_factory=dict_row)
        async with await connect as conn, conn.transaction():
            await replace_routes(conn, tenant_id=b["id"], routes=[route])
            for routed_by, tier, cost in [("intent", "kb", 0.0)] * 8 + [("explore", "llm", 0.005)] * 2:
                record = UsageRecord(tier=tier, outcome="ok", cost_usd=cost, intent="lost_luggage", routed_by=routed_by)
                await record_usage(conn, tenant_id=b["id"], record=record)
        # The pipelines refresh the roll-up the realised saving is read from (without TimescaleDB).
        refresh = psycopg.AsyncConnection.connect(settings.postgres_url, row_factory=dict_row, autocommit=True)
        async with await refresh as conn:
            await metrics.refresh_rollups(conn)

    asyncio.run(write())
    today = datetime.now(UTC).date()
    body = client.get(
        "/v1/analytics/costs", params={"from": str(today), "to": str(today)}, headers=bearer(b["keys"]["owner"])
    ).json()
    assert body["routing"]["routes"] == 1
    assert body["routing"]["projected_saving_usd_per_day"] == pytest.approx(0.004 * 50 * 0.8)
    assert body["routing"]["routed_answers"] == 8
    assert body["routing"]["realised_saving_usd"] == pytest.approx(8 * 0.005)
    other = client.get(
        "/v1/analytics/costs", params={"from": str(today), "to": str(today)}, headers=bearer(data["a"]["keys"]["owner"])
    ).json()
    assert other["routing"] == {
        "routes": 0, "projected_saving_usd_per_day": None, "realised_saving_usd": None, "routed_answers": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    "path", ["overview", "timeseries", "intents", "unanswered", "costs"], ids=lambda p: p.replace("/", "")
)
def test_only_roles_that_read_analytics_get_figures(world, path):
    client, data = world
    keys = data["a"]["keys"]
    url = f"/v1/analytics/{path}"
    for role in ("owner", "admin", "analyst", "viewer"):
        assert client.get(url, params=RANGE, headers=bearer(keys[role])).status_code == 200, role
    forbidden = client.get(url, params=RANGE, headers=bearer(keys["agent"]))
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    assert "analytics:read" in forbidden.json()["detail"]
    # A widget key only chats, on its own origin or any other.
    for origin in (WIDGET_ORIGIN, "https://elsewhere.example"):
        widget = client.get(url, params=RANGE, headers={**bearer(keys["widget"]), "Origin": origin})
        assert widget.status_code == 403, origin
    assert client.get(url, params=RANGE).status_code == 401
    assert client.get(url, params=RANGE, headers=bearer("prl_notakey")).status_code == 401
    # The operator reads tenants through the platform view, not with the tenant routes.
    assert client.get(url, params=RANGE, headers=bearer(ADMIN_TOKEN)).status_code == 403


def test_the_operator_sees_every_tenant_and_tenants_do_not(world):
    client, data = world
    body = client.get("/v1/analytics/platform", params=RANGE, headers=bearer(ADMIN_TOKEN)).json()
    rows = {row["tenant_id"]: row for row in body["tenants"]}
    for name in ("a", "b"):
        tenant = data[name]
        assert (
            rows[tenant["id"]]["conversations"]
            == sums(tenant["rows"], date.fromisoformat(RANGE["from"]), END)["conversations"]
        )
    assert (
        client.get("/v1/analytics/platform", params=RANGE, headers=bearer(data["a"]["keys"]["owner"])).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-30", "to": "2026-11-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-11-30"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"metric": "revenue"}, "metric"),
        ({"interval": "hour"}, "interval"),
    ],
)
def test_bad_queries_get_a_problem_document(world, params, field):
    client, data = world
    response = client.get("/v1/analytics/timeseries", params=params, headers=bearer(data["a"]["keys"]["owner"]))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 422 and any(error["field"] == field for error in body["errors"])
    assert "Traceback" not in response.text


def test_the_platform_app_sends_analytics_paths_to_the_analytics_tier_and_runs_both_lifespans():
    started: list[str] = []

    def app(name: str) -> FastAPI:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def lifespan(_):
            started.append(name)
            yield
            started.append(f"{name} stopped")

        tier = FastAPI(lifespan=lifespan)

        @tier.get("/{path:path}")
        async def who(path: str) -> dict:
            return {"tier": name, "path": path}

        return tier

    with TestClient(Platform(app("serving"), app("analytics"))) as client:
        assert sorted(started) == ["analytics", "serving"]
        assert client.get("/v1/analytics/overview").json()["tier"] == "analytics"
        assert client.get("/dashboard").json()["tier"] == "analytics"
        assert client.get("/dashboard/assets/plotly.min.js").json()["tier"] == "analytics"
        assert client.get("/v1/analyticsx").json()["tier"] == "serving"
        assert client.get("/v1/conversations").json()["tier"] == "serving"
        assert client.get("/readyz").json()["tier"] == "serving"
    assert "serving stopped" in started and "analytics stopped" in started
