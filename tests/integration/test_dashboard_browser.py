"""The executives' dashboard in a real browser (Debian's Chromium) against the analytics app on the session's database.

Two tenants get 60 days of known daily facts (tenant_daily, intent_daily, unanswered_daily, a learned route); the page,
signed in with tenant A's keys, must show A's figures as computed here from those rows, and nothing of B's.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect
from psycopg.rows import dict_row

from analytics_api.app import create_app
from core import metrics, tenancy
from core.analytics import DateRange, bucket_starts
from core.schemas import Role
from tests.conftest import ADMIN_TOKEN, serving

REPO = Path(__file__).resolve().parents[2]
HISTORY_DAYS = 60
RANGE_DAYS = 30  # the page's default range: the last 30 days, today (UTC) included
LOAD_TIMEOUT_MS = 30_000  # plotly.min.js is 4.8 MB to parse, and the machine may be busy
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PROVIDERS_YAML = """
providers:
  acme:
    protocol: openai
    base_url: http://127.0.0.1:9/v1
    models:
      small: {input_per_mtok: 0.5, output_per_mtok: 1.5, context_tokens: 16000}
      large: {input_per_mtok: 10.0, output_per_mtok: 30.0, context_tokens: 128000}
"""
# What each tenant's customers ask about: (intent, share of the day's conversations). The first leads by far.
INTENTS = {
    "A": [("track_order", 0.45), ("refund_request", 0.3), ("change_address", 0.15), ("opening_hours", 0.1)],
    "B": [("warranty_claim_zephyr", 0.6), ("loyalty_points_quokka", 0.4)],
}
# Unanswered questions: (normalised question, as a customer wrote it, asked per day).
QUESTIONS = {
    "A": [
        ("do you ship to iceland", "Do you ship to Iceland?", 3),
        ("can i pay with klarna", "Can I pay with Klarna?", 2),
        ("is there a student discount", "Is there a student discount??", 1),
    ],
    "B": [("is the zephyr warranty transferable", "Is the Zephyr warranty transferable?", 4)],
}
# Asked a lot, but only before the range: must not lead A's table.
OLD_QUESTION = ("what are your christmas opening hours", "What are your Christmas opening hours?", 90)
ROUTE = {"intent": "track_order", "baseline_cost_usd": 0.004, "route_cost_usd": 0.0005, "answers_per_day": 12.0}
EXPLORE_SHARE = 0.1


# ---- What the page shows, formatted the way dashboard.js formats it (en-US) ----------------------------------------


def fmt_count(value: float) -> str:
    return f"{round(value):,}"


def fmt_percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def fmt_money(value: float) -> str:
    size = abs(value)
    digits = 2 if size >= 1 or size == 0 else min(6, max(2, 1 - math.floor(math.log10(size))))
    return f"${value:,.{digits}f}"


def fmt_score(value: float) -> str:
    return ("+" if value > 0 else "") + f"{value:.2f}"


# ---- The tenants and their rows ----------------------------------------------------------------------------------


@dataclass
class Tenant:
    label: str
    id: str = ""
    name: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    tenant_rows: list[dict] = field(default_factory=list)
    intent_rows: list[dict] = field(default_factory=list)
    unanswered_rows: list[tuple] = field(default_factory=list)

    def distinctive(self) -> list[str]:
        """Text only this tenant's page may show."""
        texts = [intent for intent, _ in INTENTS[self.label]]
        for question, example, _ in QUESTIONS[self.label]:
            texts += [question, example]
        return [*texts, self.id]


def daily_rows(tenant: Tenant, days: list[date], *, scale: int, rng: random.Random) -> None:
    for day in days:
        conversations = rng.randint(8, 16) * scale
        resolved = round(conversations * rng.uniform(0.5, 0.8))
        handoff = rng.randint(0, (conversations - resolved) // 2)
        abandoned = rng.randint(0, conversations - resolved - handoff)
        user_messages = conversations * rng.randint(2, 4)
        llm, kb, cache, local = (round(user_messages * share) for share in (0.35, 0.4, 0.15, 0.1))
        input_tokens, output_tokens = llm * rng.randint(600, 900), llm * rng.randint(100, 200)
        cost = (input_tokens * 0.5 + output_tokens * 1.5) / 1e6  # the small model answered
        up, down = rng.randint(3, 12) * scale, rng.randint(0, 4) * scale
        negative = rng.randint(0, user_messages // 5)
        positive = rng.randint(0, user_messages - negative)
        tenant.tenant_rows.append(
            {
                "tenant_id": tenant.id,
                "day": day,
                "conversations": conversations,
                "resolved": resolved,
                "handoff": handoff,
                "abandoned": abandoned,
                "open": conversations - resolved - handoff - abandoned,
                "deflection_rate": resolved / (resolved + handoff + abandoned),
                "messages": 2 * user_messages,
                "user_messages": user_messages,
                "assistant_messages": user_messages,
                "unanswered": rng.randint(0, 6),
                "answered_by_cache": cache,
                "answered_by_kb": kb,
                "answered_by_local": local,
                "answered_by_llm": llm,
                "feedback_up": up,
                "feedback_down": down,
                "satisfaction": up / (up + down),
                "sentiment_negative": negative,
                "sentiment_neutral": user_messages - negative - positive,
                "sentiment_positive": positive,
                "sentiment_mean": round(rng.uniform(-0.4, 0.6), 4),
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cost_usd": cost,
                "cost_per_conversation_usd": cost / conversations,
                "latency_ms_p50": rng.uniform(300, 600),
                "latency_ms_p95": rng.uniform(900, 2500),
                "pii_redactions": rng.randint(0, 3),
            }
        )
        left = conversations
        for position, (intent, share) in enumerate(INTENTS[tenant.label]):
            part = left if position == len(INTENTS[tenant.label]) - 1 else round(conversations * share)
            left -= part
            part_resolved = round(part * 0.6)
            tenant.intent_rows.append(
                {
                    "tenant_id": tenant.id,
                    "day": day,
                    "intent": intent,
                    "conversations": part,
                    "resolved": part_resolved,
                    "handoff": part - part_resolved,
                    "abandoned": 0,
                    "deflection_rate": part_resolved / part if part else None,
                    "messages": 4 * part,
                    "unanswered": 0,
                    "feedback_up": part // 2,
                    "feedback_down": part // 5,
                    "negative_share": 0.1,
                    "cost_usd": cost * share,
                }
            )
        for question, example, asked in QUESTIONS[tenant.label]:
            tenant.unanswered_rows.append((tenant.id, day, question, example, asked))


async def _seed(url: str, tenants: list[Tenant], days: list[date]) -> None:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        for tenant in tenants:
            tenant.name = f"dash-{tenant.label.lower()}-{secrets.token_hex(4)}"
            record, _, owner = await tenancy.create_tenant_with_owner(conn, name=tenant.name, actor="platform-admin")
            tenant.id, tenant.keys["owner"] = record.id, owner
            for role in (Role.VIEWER, Role.AGENT):
                _, secret = await tenancy.create_api_key(
                    conn, tenant_id=record.id, role=role, name=role.value, actor="platform-admin"
                )
                tenant.keys[role.value] = secret
        rng = random.Random(20261201)
        for tenant, scale in zip(tenants, (1, 7), strict=True):
            daily_rows(tenant, days, scale=scale, rng=rng)
        a = tenants[0]
        a.unanswered_rows.append((a.id, days[-1] - timedelta(days=45), *OLD_QUESTION))
        async with conn.transaction():
            await metrics.replace_days(
                conn,
                tenant_days=[(tenant.id, day) for tenant in tenants for day in days],
                tenant_rows=[row for tenant in tenants for row in tenant.tenant_rows],
                intent_rows=[row for tenant in tenants for row in tenant.intent_rows],
            )
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO unanswered_daily (tenant_id, day, question, example, asked)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [row for tenant in tenants for row in tenant.unanswered_rows],
                )
            await conn.execute(
                """INSERT INTO routing_policy (tenant_id, intent, tier, explore_share, samples, quality, baseline_tier,
                                               baseline_quality, baseline_cost_usd, route_cost_usd, answers_per_day)
                   VALUES (%(tenant_id)s, %(intent)s, 'kb', %(explore)s, 240, 0.9, 'acme/large', 0.92,
                           %(baseline_cost_usd)s, %(route_cost_usd)s, %(answers_per_day)s)""",
                {"tenant_id": a.id, "explore": EXPLORE_SHARE, **ROUTE},
            )


@dataclass
class Dashboard:
    base: str
    a: Tenant
    b: Tenant
    start: date
    end: date


@pytest.fixture(scope="module")
def dashboard(settings, tmp_path_factory) -> Iterator[Dashboard]:
    providers = tmp_path_factory.mktemp("dashboard") / "providers.yaml"
    providers.write_text(PROVIDERS_YAML, encoding="utf-8")
    today = datetime.now(UTC).date()
    # The oldest first: days[0] is 59 days ago, days[-1] today.
    days = [today - timedelta(days=back) for back in range(HISTORY_DAYS - 1, -1, -1)]
    a, b = Tenant("A"), Tenant("B")
    # In a thread of its own: playwright's sync API may already run an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _seed(settings.postgres_url, [a, b], days)).result(timeout=60)
    app = create_app(settings.model_copy(update={"providers_file": providers}))
    with serving(app) as base:
        yield Dashboard(base=base, a=a, b=b, start=today - timedelta(days=RANGE_DAYS - 1), end=today)


def new_page(browser: Browser, dashboard: Dashboard, *, viewport=LAPTOP, mobile: bool = False) -> Page:
    context = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile, locale="en-US")
    context.set_default_timeout(15_000)

    # Nothing but the app itself: the page must load plotly from Parley, never from a CDN.
    def only_local(route) -> None:
        if route.request.url.startswith(dashboard.base + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    outside: list[str] = []
    context.route("**/*", only_local)
    page = context.new_page()
    page.outside_requests = outside  # type: ignore[attr-defined]
    page.goto(f"{dashboard.base}/dashboard")
    return page


@pytest.fixture
def page(browser: Browser, dashboard: Dashboard) -> Iterator[Page]:
    page = new_page(browser, dashboard)
    try:
        yield page
    finally:
        assert page.outside_requests == []  # type: ignore[attr-defined]
        page.context.close()


def sign_in(page: Page, key: str) -> None:
    field_ = page.get_by_label("API key")
    expect(field_).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    field_.fill(key)
    page.get_by_role("button", name="Sign in").click()


def wait_for_figures(page: Page) -> None:
    expect(page.locator("#status")).to_contain_text("Showing", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("#problem")).to_be_hidden()


def in_range(rows: list[dict], start: date, end: date) -> list[dict]:
    return [row for row in rows if start <= row["day"] <= end]


def expected_tiles(tenant: Tenant, start: date, end: date) -> dict[str, str]:
    rows = in_range(tenant.tenant_rows, start, end)
    total = {column: sum(row[column] for row in rows) for column in rows[0] if column not in ("tenant_id", "day")}
    closed = total["resolved"] + total["handoff"] + total["abandoned"]
    scored = [row["sentiment_negative"] + row["sentiment_neutral"] + row["sentiment_positive"] for row in rows]
    mean = sum(row["sentiment_mean"] * n for row, n in zip(rows, scored, strict=True)) / sum(scored)
    return {
        "conversations": fmt_count(total["conversations"]),
        "deflection": fmt_percent(total["resolved"] / closed),
        "satisfaction": fmt_percent(total["feedback_up"] / (total["feedback_up"] + total["feedback_down"])),
        "sentiment": fmt_score(mean),
        "unanswered": fmt_count(total["unanswered"]),
        "cost": fmt_money(total["cost_usd"] / total["conversations"]),
    }


def top(rows, key: str, value: str) -> str:
    sums: dict[str, float] = {}
    for row in rows:
        sums[row[key]] = sums.get(row[key], 0) + row[value]
    return max(sorted(sums), key=lambda name: sums[name])


def test_a_tenant_sees_its_own_figures_charts_and_savings_and_none_of_another_tenants(browser, dashboard, page):
    a, b, start, end = dashboard.a, dashboard.b, dashboard.start, dashboard.end
    sign_in(page, a.keys["owner"])
    wait_for_figures(page)
    expect(page.locator("#who")).to_have_text(a.name)

    # The KPI tiles: A's figures over the last 30 days, as computed here from the rows written.
    for kpi, value in expected_tiles(a, start, end).items():
        expect(page.locator(f'[data-kpi="{kpi}"] .kpi-value')).to_have_text(value)
    now = sum(row["conversations"] for row in in_range(a.tenant_rows, start, end))
    previous = in_range(a.tenant_rows, start - timedelta(days=RANGE_DAYS), start - timedelta(days=1))
    before = sum(row["conversations"] for row in previous)
    change = (now - before) / before
    sign = "+" if change > 0 else "\u2212"
    expected_change = f"{sign}{abs(change) * 100:.1f}% on the previous {RANGE_DAYS} days"
    expect(page.locator('[data-kpi="conversations"] .kpi-change')).to_contain_text(expected_change)

    # The charts were drawn by plotly, with data: one bar per day of the range in the conversations chart.
    for chart in ("conversations", "quality", "sentiment", "costs"):
        expect(page.locator(f"#chart-{chart}.js-plotly-plot")).to_have_count(1)
        traces = page.evaluate(f"document.getElementById('chart-{chart}').data.length")
        assert traces > 0, chart
    expect(page.locator("#chart-conversations .trace.bars .point")).to_have_count(RANGE_DAYS)
    assert page.evaluate("document.getElementById('chart-conversations').data[0].x.length") == RANGE_DAYS
    expect(page.locator("#chart-quality .scatterlayer .trace")).to_have_count(2)
    expect(page.locator("#chart-costs .scatterlayer .trace")).to_have_count(2)  # real cost, and the baseline's

    # Top intents and unanswered questions: A's leaders first (the old question was asked before the range).
    leading_intent = top(in_range(a.intent_rows, start, end), "intent", "conversations")
    expect(page.locator("#intents tbody tr").first.locator("th")).to_have_text(leading_intent)
    unanswered = [dict(zip(("day", "question", "example", "asked"), row[1:], strict=True)) for row in a.unanswered_rows]
    leading_question = top(in_range(unanswered, start, end), "question", "asked")
    example = next(row["example"] for row in unanswered if row["question"] == leading_question)
    expect(page.locator("#unanswered tbody tr").first.locator("th")).to_have_text(example)
    expect(page.locator("#unanswered")).not_to_contain_text(OLD_QUESTION[1])

    # Costs: the saving the API reports against the priciest model, the route's projected saving, no realised one.
    costs = httpx.get(
        f"{dashboard.base}/v1/analytics/costs",
        params={"from": start.isoformat(), "to": end.isoformat()},
        headers={"Authorization": f"Bearer {a.keys['owner']}"},
        timeout=10,
    ).json()
    assert costs["baseline"]["model"] == "acme/large" and costs["saved_usd"] > 0, costs
    saved = f"{fmt_money(costs['saved_usd'])} ({fmt_percent(costs['saved_share'])})"
    expect(page.locator('[data-figure="saved"] dd')).to_have_text(saved)
    expect(page.locator('[data-figure="saved"] dt')).to_contain_text("acme/large")
    explore = struct.unpack("f", struct.pack("f", EXPLORE_SHARE))[0]  # explore_share is a `real` column
    projected = (ROUTE["baseline_cost_usd"] - ROUTE["route_cost_usd"]) * ROUTE["answers_per_day"] * (1 - explore)
    expect(page.locator('[data-figure="projected"] dd')).to_contain_text(f"{fmt_money(projected)} a day")
    expect(page.locator('[data-figure="realised"] dd')).to_contain_text("\u2014")

    # Nothing of tenant B anywhere: not in the text, not in the markup (plotly's SVG included).
    html, text = page.content(), page.locator("body").inner_text()
    for distinctive in b.distinctive():
        assert distinctive not in html and distinctive not in text, distinctive

    shot = artifacts() / "dashboard-laptop.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    # The key lives in this tab's sessionStorage until "Sign out", which also takes every figure off the page.
    assert page.evaluate("sessionStorage.getItem('parley:dashboard:key')") == a.keys["owner"]
    page.reload()
    wait_for_figures(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert leading_intent not in page.content()


def test_on_a_phone_the_page_fits_the_screen(browser, dashboard):
    page = new_page(browser, dashboard, viewport=PHONE, mobile=True)
    try:
        sign_in(page, dashboard.a.keys["owner"])
        wait_for_figures(page)
        expect(page.locator("#chart-conversations .trace.bars .point")).to_have_count(RANGE_DAYS)
        expected = expected_tiles(dashboard.a, dashboard.start, dashboard.end)["conversations"]
        expect(page.locator('[data-kpi="conversations"] .kpi-value')).to_have_text(expected)
        page.wait_for_timeout(300)  # plotly's responsive resize is debounced
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways: {width} px wide"
        shot = artifacts() / "dashboard-phone.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0
        assert page.outside_requests == []  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_a_viewer_key_reads_the_dashboard_by_week_and_over_an_empty_range(dashboard, page):
    sign_in(page, dashboard.a.keys["viewer"])
    wait_for_figures(page)
    expected = expected_tiles(dashboard.a, dashboard.start, dashboard.end)["conversations"]
    expect(page.locator('[data-kpi="conversations"] .kpi-value')).to_have_text(expected)

    # By week: one bar per week that overlaps the range.
    page.get_by_label("Charts by").select_option("week")
    weeks = len(bucket_starts(DateRange(dashboard.start, dashboard.end), "week"))
    expect(page.locator("#chart-conversations .trace.bars .point")).to_have_count(weeks)
    assert page.evaluate("document.getElementById('chart-conversations').data[0].x.length") == weeks

    # A range before any data: the page says so, and figures it cannot know show as a dash.
    page.get_by_label("Period", exact=True).select_option("custom")
    page.get_by_label("From", exact=True).fill("2020-01-01")
    page.get_by_label("To", exact=True).fill("2020-01-31")
    expect(page.locator("#status")).to_contain_text("Jan 31, 2020", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("#problem")).to_be_hidden()
    expect(page.locator("#empty")).to_have_text("No data for this range yet.")
    expect(page.locator('[data-kpi="conversations"] .kpi-value')).to_have_text("0")
    for kpi in ("deflection", "satisfaction", "sentiment", "cost"):
        expect(page.locator(f'[data-kpi="{kpi}"] .kpi-value')).to_have_text("\u2014")
    expect(page.locator('[data-figure="saved"] dd')).to_have_text("\u2014")
    expect(page.locator("#chart-conversations + .empty")).to_have_text("No data for this range yet.")
    expect(page.locator("#intents tbody")).to_have_text("No data for this range yet.")
    expect(page.locator("#unanswered tbody")).to_have_text("No data for this range yet.")
    shot = artifacts() / "dashboard-empty.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    # The server out of reach: the page says so, and that what it still shows is from before.
    page.route("**/v1/analytics/**", lambda route: route.abort("connectionrefused"))
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#problem")).to_contain_text("Could not reach the Parley server")
    expect(page.locator("#status")).to_have_text("Still showing the figures of the last successful load.")


def test_an_agent_key_is_told_it_may_not_and_a_bad_key_is_not_accepted(dashboard, page):
    detail = httpx.get(
        f"{dashboard.base}/v1/analytics/overview",
        headers={"Authorization": f"Bearer {dashboard.a.keys['agent']}"},
        timeout=10,
    ).json()["detail"]
    assert "analytics:read" in detail, detail
    sign_in(page, dashboard.a.keys["agent"])
    problem = page.locator("#signin-problem")
    expect(problem).to_contain_text(detail, timeout=LOAD_TIMEOUT_MS)
    expect(problem).to_contain_text("cannot open the dashboard")
    expect(page.locator("#dashboard")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0

    sign_in(page, "prl_000000000000_" + "x" * 40)
    expect(problem).to_contain_text("That key was not accepted", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("#dashboard")).to_be_hidden()
    for tenant in (dashboard.a, dashboard.b):
        assert tenant.keys["owner"] not in page.content()


def test_the_operator_token_shows_every_tenant(dashboard, page):
    sign_in(page, ADMIN_TOKEN)
    wait_for_figures(page)
    expect(page.locator("#who")).to_have_text("Platform operator")
    expect(page.locator("#tenant-view")).to_be_hidden()
    for tenant in (dashboard.a, dashboard.b):
        row = page.locator(f'#tenants tr[data-tenant="{tenant.id}"]')
        expect(row.locator("th")).to_contain_text(tenant.name)
        expected = expected_tiles(tenant, dashboard.start, dashboard.end)["conversations"]
        expect(row.locator("td").first).to_have_text(expected)
    shot = artifacts() / "dashboard-operator.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0


def artifacts() -> Path:
    folder = Path(os.environ.get("PARLEY_TEST_ARTIFACTS") or REPO / "var" / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
