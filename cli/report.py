"""`parley report --tenant ID --month YYYY-MM [--format html|pdf] [--out FILE]`: a tenant's monthly summary for its
executives, from the metrics store (analytics_api/report.py renders it). Prints JSON: where it went, what it covers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Literal

import typer


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"parley: {message}", err=True)
    return typer.Exit(code)


def report(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant's id")],
    month: Annotated[str, typer.Option("--month", help="The calendar month, YYYY-MM (UTC)")],
    format: Annotated[Literal["html", "pdf"], typer.Option("--format", help="html, or pdf (needs Chromium)")] = "html",
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write it [parley-report-<tenant>-<month>.<ext>]")
    ] = None,
) -> None:
    """Write a tenant's monthly summary (KPIs against the month before, daily conversations, top intents, unanswered
    questions, cost and the router's saving) as a self-contained HTML page or a PDF an executive can forward."""
    from analytics_api.report import month_range, print_pdf, render_html
    from core.settings import SettingsError, load_settings

    try:
        span = month_range(month)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise _fail(str(exc), 2) from None
    data = asyncio.run(_gather(settings, tenant_id=tenant, span=span))
    if data is None:
        raise _fail(f"no tenant {tenant!r}")
    target = out or Path(f"parley-report-{tenant}-{month}.{format}")
    target.parent.mkdir(parents=True, exist_ok=True)
    page = render_html(data)
    if format == "pdf":
        try:
            print_pdf(page, target)
        except (RuntimeError, OSError) as exc:
            raise _fail(str(exc)) from None
    else:
        target.write_text(page, encoding="utf-8")
    summary = {
        "tenant_id": tenant,
        "month": month,
        "format": format,
        "path": str(target.resolve()),
        "bytes": target.stat().st_size,
        "conversations": data.overview["kpis"]["conversations"],
    }
    typer.echo(json.dumps(summary, indent=2))


async def _gather(settings, *, tenant_id: str, span):
    from analytics_api.app import most_expensive
    from analytics_api.report import gather
    from core import tenancy
    from core.db import open_database
    from core.llm.catalog import load_catalog

    baseline = most_expensive(load_catalog(settings.providers_file))
    async with open_database(settings) as db, db.connection() as conn:
        found = await tenancy.get_tenant(conn, tenant_id=tenant_id)
        if found is None:
            return None
        return await gather(conn, tenant_id=tenant_id, tenant_name=found.name, span=span, baseline=baseline)
