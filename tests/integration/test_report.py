"""`parley report`: a tenant's month as HTML and as PDF (printed by Debian's Chromium), from the metrics store on
the embedded PostgreSQL; the other tenant's figures never appear in it; bad arguments fail with one line."""

from __future__ import annotations

import asyncio
import html
import json
import os
import secrets
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from core import tenancy
from tests.integration.test_analytics_api import store_history

PARLEY = str(Path(sys.executable).with_name("parley"))
MONTH = "2026-11"


def parley(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([PARLEY, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


async def _tenants(url: str) -> dict:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn, conn.transaction():
        made = {}
        for name, seed, intents in (("a", 3, ["card_arrival", "top_up"]), ("b", 4, ["lost_luggage", "seat_upgrade"])):
            tenant = await tenancy.create_tenant(conn, name=f"Report {name} {secrets.token_hex(3)}", actor="test")
            history = await store_history(conn, tenant_id=tenant.id, seed=seed, intents=intents)
            november = [row for row in history["rows"] if row["day"] >= date(2026, 11, 1)]
            made[name] = {
                "id": tenant.id,
                "name": tenant.name,
                "intents": intents,
                "conversations": sum(row["conversations"] for row in november),
            }
        return made


@pytest.fixture(scope="module")
def tenants(settings):
    return asyncio.run(_tenants(settings.postgres_url))


@pytest.fixture
def env(settings, tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return {**clean, "PARLEY_POSTGRES_URL": settings.postgres_url, "PARLEY_DATA_DIR": str(tmp_path)}


def test_an_html_report_holds_the_tenants_month_and_nothing_of_another(tenants, env, tmp_path):
    a, b = tenants["a"], tenants["b"]
    out = tmp_path / "a.html"
    done = parley("report", "--tenant", a["id"], "--month", MONTH, "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["path"] == str(out.resolve()) and summary["format"] == "html"
    assert summary["conversations"] == a["conversations"]
    page = out.read_text()
    assert html.escape(a["name"]) in page and "November 2026" in page
    assert f"{a['conversations']:,}" in page
    assert all(intent in page for intent in a["intents"])
    assert f"where is my {a['intents'][0]} refund".capitalize() in page
    assert page.count("<rect") == 30  # a bar per day of November
    assert "<script" not in page and "http" not in page.split("</style>")[1]  # self-contained: nothing to fetch
    assert b["id"] not in page and b["name"] not in page and not any(intent in page for intent in b["intents"])


def test_a_pdf_report_is_printed_by_chromium(tenants, env, tmp_path):
    out = tmp_path / "a.pdf"
    done = parley(
        "report", "--tenant", tenants["a"]["id"], "--month", MONTH, "--format", "pdf", "--out", str(out), env=env
    )
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 5_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "month must look like YYYY-MM"),
        (["--month", "November"], "month must look like YYYY-MM"),
        (["--tenant", "t_missing", "--month", MONTH], "no tenant 't_missing'"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(tenants, env, tmp_path, args, message):
    if "--tenant" not in args:
        args = ["--tenant", tenants["a"]["id"], *args]
    done = parley("report", *args, "--out", str(tmp_path / "x.html"), env=env)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.html").exists()
