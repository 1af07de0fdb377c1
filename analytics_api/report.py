"""A tenant's monthly summary as one self-contained HTML page an executive can forward (no scripts, no outside
assets: the charts are inline SVG), and as PDF printed from that page by headless Chromium. `parley report` writes it.
"""

from __future__ import annotations

import calendar
import html
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from psycopg import AsyncConnection

from core import analytics
from core.analytics import Baseline, DateRange

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
PRINT_TIMEOUT_S = 60


def month_range(month: str) -> DateRange:
    """'2026-11' -> 1 to 30 November 2026; ValueError on anything else."""
    year, _, number = month.partition("-")
    if not (len(year) == 4 and year.isdigit() and len(number) == 2 and number.isdigit() and 1 <= int(number) <= 12):
        raise ValueError(f"month must look like YYYY-MM, got {month!r}")
    first = date(int(year), int(number), 1)
    return DateRange(first, first.replace(day=calendar.monthrange(first.year, first.month)[1]))


@dataclass(frozen=True)
class ReportData:
    tenant_name: str
    span: DateRange
    overview: dict
    daily: list[dict]
    intents: list[dict]
    unanswered: list[dict]
    costs: dict


async def gather(
    conn: AsyncConnection, *, tenant_id: str, tenant_name: str, span: DateRange, baseline: Baseline | None
) -> ReportData:
    return ReportData(
        tenant_name=tenant_name,
        span=span,
        overview=await analytics.overview(conn, tenant_id=tenant_id, span=span),
        daily=await analytics.timeseries(conn, tenant_id=tenant_id, metric="conversations", interval="day", span=span),
        intents=await analytics.top_intents(conn, tenant_id=tenant_id, span=span, limit=10),
        unanswered=await analytics.unanswered(conn, tenant_id=tenant_id, span=span, limit=10),
        costs=await analytics.costs(conn, tenant_id=tenant_id, span=span, baseline=baseline),
    )


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _usd(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"${value:,.{digits}f}"


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _change(current: float | None, previous: float | None, *, points: bool = False) -> str:
    if current is None or previous is None:
        return ""
    if points:
        return f"{(current - previous) * 100:+.1f} pts"
    if not previous:
        return ""
    return f"{(current - previous) / previous * 100:+.0f}%"


def _bars(points: list[dict], *, width: int = 640, height: int = 140) -> str:
    """Daily values as an inline SVG bar chart, labelled for screen readers."""
    values = [point["value"] or 0 for point in points]
    top = max(values, default=0) or 1
    step = width / max(1, len(values))
    bars = "".join(
        f'<rect x="{i * step + 1:.1f}" y="{height - v / top * (height - 16):.1f}" width="{max(1.0, step - 2):.1f}" '
        f'height="{v / top * (height - 16):.1f}"><title>{html.escape(str(p["start"]))}: {v:,.0f}</title></rect>'
        for i, (p, v) in enumerate(zip(points, values, strict=True))
    )
    return (
        f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Conversations per day, peak {top:,.0f}">{bars}</svg>'
    )


def render_html(data: ReportData) -> str:
    kpis, previous = data.overview["kpis"], data.overview["previous"]
    costs = data.costs
    tiles = [
        ("Conversations", _count(kpis["conversations"]), _change(kpis["conversations"], previous["conversations"])),
        (
            "Deflection",
            _share(kpis["deflection_rate"]),
            _change(kpis["deflection_rate"], previous["deflection_rate"], points=True),
        ),
        (
            "Satisfaction",
            _share(kpis["satisfaction"]),
            _change(kpis["satisfaction"], previous["satisfaction"], points=True),
        ),
        (
            "Negative sentiment",
            _share(kpis["sentiment"]["negative_share"]),
            _change(kpis["sentiment"]["negative_share"], previous["sentiment"]["negative_share"], points=True),
        ),
        ("Unanswered questions", _count(kpis["unanswered"]), _change(kpis["unanswered"], previous["unanswered"])),
        (
            "Cost per conversation",
            _usd(kpis["cost_per_conversation_usd"], 4),
            _change(kpis["cost_per_conversation_usd"], previous["cost_per_conversation_usd"]),
        ),
    ]
    tile_html = "".join(
        f'<div class="tile"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="change">{html.escape(change)}</div></div>'
        for label, value, change in tiles
    )
    intent_rows = (
        "".join(
            f"<tr><td>{html.escape(row['intent'])}</td><td>{_count(row['conversations'])}</td>"
            f"<td>{_share(row['deflection_rate'])}</td><td>{_share(row['satisfaction'])}</td>"
            f"<td>{_count(row['unanswered'])}</td></tr>"
            for row in data.intents
        )
        or '<tr><td colspan="5">No conversations this month.</td></tr>'
    )
    question_rows = (
        "".join(
            f"<tr><td>{html.escape(row['example'])}</td><td>{_count(row['asked'])}</td></tr>" for row in data.unanswered
        )
        or '<tr><td colspan="2">None: every question got an answer.</td></tr>'
    )
    baseline = costs["baseline"]
    routing = costs["routing"]
    saving = (
        f"Against {html.escape(baseline['model'])} answering every question ({_usd(baseline['cost_usd'])}), the router "
        f"saved {_usd(costs['saved_usd'])} ({_share(costs['saved_share'])})."
        if baseline["model"] and baseline["cost_usd"] is not None
        else "No paid model is configured, so there is no saving to measure."
    )
    if routing["routes"]:
        saving += (
            f" Learned per-intent routes ({routing['routes']}) were projected to save "
            f"{_usd(routing['projected_saving_usd_per_day'])} a day; realised this month: "
            f"{_usd(routing['realised_saving_usd'])} over {routing['routed_answers']:,} routed answers."
        )
    title = f"{data.tenant_name} — {data.span.start:%B %Y}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; margin: 2rem auto;
       max-width: 760px; padding: 0 1rem; }}
h1 {{ font-size: 1.6rem; margin-bottom: .2rem; }} h2 {{ font-size: 1.1rem; margin-top: 2rem; }}
.sub {{ color: #5b6472; margin-top: 0; }}
.tiles {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: .75rem; }}
.tile {{ border: 1px solid #d9dee7; border-radius: 8px; padding: .75rem 1rem; }}
.label {{ color: #5b6472; font-size: .85rem; }} .value {{ font-size: 1.5rem; font-weight: 600; }}
.change {{ color: #5b6472; font-size: .85rem; min-height: 1.1em; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: .35rem .5rem;
        border-bottom: 1px solid #e6e9ef; }} th {{ color: #5b6472; font-weight: 600; font-size: .85rem; }}
td:not(:first-child), th:not(:first-child) {{ text-align: right; }}
.bars {{ width: 100%; height: auto; }} .bars rect {{ fill: #3565d6; }}
footer {{ color: #7a8291; font-size: .8rem; margin-top: 2.5rem; }}
@media print {{ body {{ margin: 0 auto; }} .tile, table {{ break-inside: avoid; }} }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="sub">Your assistant's month: {data.span.start:%d %B} to {data.span.end:%d %B %Y}, against the month
before.</p>
<div class="tiles">{tile_html}</div>
<h2>Conversations per day</h2>
{_bars(data.daily)}
<h2>Cost</h2>
<p>{_usd(costs["cost_usd"])} for {_count(costs["conversations"])} conversations
({_usd(costs["cost_per_conversation_usd"], 4)} each). {saving}</p>
<h2>Top intents</h2>
<table><thead><tr><th scope="col">Intent</th><th scope="col">Conversations</th><th scope="col">Deflection</th>
<th scope="col">Satisfaction</th><th scope="col">Unanswered</th></tr></thead><tbody>{intent_rows}</tbody></table>
<h2>Most asked questions without an answer</h2>
<table><thead><tr><th scope="col">Question</th><th scope="col">Asked</th></tr></thead>
<tbody>{question_rows}</tbody></table>
<footer>Parley report · figures from the metrics store as the pipelines last exported them</footer>
</body></html>
"""


def chromium() -> str | None:
    return next((found for name in CHROMIUM_CANDIDATES if (found := shutil.which(name))), None)


def print_pdf(page: str, out: Path) -> None:
    """Print the HTML page to PDF with headless Chromium (RuntimeError when it is missing or fails)."""
    browser = chromium()
    if browser is None:
        raise RuntimeError("PDF needs Chromium (Debian: apt-get install -y chromium); --format html needs nothing")
    with tempfile.TemporaryDirectory(prefix="parley-report-") as scratch:
        source = Path(scratch) / "report.html"
        source.write_text(page, encoding="utf-8")
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
            f"--user-data-dir={Path(scratch) / 'profile'}", f"--print-to-pdf={out.resolve()}", source.as_uri(),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=PRINT_TIMEOUT_S, check=False)  # noqa: S603
    if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"Chromium could not print the report (exit {done.returncode})")
