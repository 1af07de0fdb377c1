"""`parley lake ...`: analysts' access to the lakehouse.

Who is asking decides what the SQL sees (core/lake_sql.py does the scoping and the lock-down):

- a tenant API key (`--key` or PARLEY_API_KEY), looked up in the platform database as the API server does: its
  tenant's rows only, and only when its role holds `analytics:read`;
- the platform operator's token (`--admin-token` or PARLEY_ADMIN_TOKEN, compared in constant time with the configured
  PARLEY_ADMIN_TOKEN): every tenant, or one with `--tenant`.

Prefer the environment variables to the flags: a flag's value is visible to other users in the process list.
Exit codes: 0 done, 1 refused or failed (bad credentials, bad SQL), 2 bad usage or settings.

Heavy libraries (duckdb, pyarrow, deltalake, psycopg) are imported inside the commands: every `parley` command imports
this module.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hmac
import io
import json
import math
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import pyarrow as pa

    from core.settings import Settings

lake_app = typer.Typer(no_args_is_help=True, help="Query the lakehouse (DuckDB over the Delta tables).")

# A table-format cell longer than this is cut (CSV and JSON are never cut).
MAX_CELL_CHARS = 60


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="PARLEY_API_KEY",
        show_envvar=True,
        show_default=False,
        help="A tenant API key with analytics:read: scopes the SQL to that tenant.",
    ),
]
AdminTokenOption = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        envvar="PARLEY_ADMIN_TOKEN",
        show_envvar=True,
        show_default=False,
        help="The platform operator's token: every tenant (narrow with --tenant).",
    ),
]
TenantOption = Annotated[
    str | None,
    typer.Option("--tenant", show_default=False, help="Only this tenant's rows (the operator's narrowing)."),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"parley: {message}", err=True)
    return typer.Exit(code)


def _load_settings() -> Settings:
    from core.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc).replace("\n", "\nparley: "), 2) from None


@dataclass(frozen=True)
class Scope:
    """What the caller may read: one tenant (`tenant_id`) or every tenant (None, the operator)."""

    tenant_id: str | None
    caller: str

    def connect_kwargs(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id} if self.tenant_id is not None else {"all_tenants": True}


async def _identity(settings: Settings, key: str):
    from core.db import open_database
    from core.tenancy import authenticate_key

    # No migrations from an analyst's read: the server and `parley migrate` own the schema.
    async with open_database(settings, run_migrations=False) as db, db.transaction() as conn:
        return await authenticate_key(conn, key=key)


def _key_scope(settings: Settings, key: str, tenant: str | None) -> Scope:
    from core.schemas import TenantStatus
    from core.tenancy import Permission, Principal

    try:
        identity = asyncio.run(_identity(settings, key))
    except Exception as exc:  # the database is down, unreachable or not migrated: say so, without a traceback
        raise _fail(f"cannot check the API key against the platform database: {type(exc).__name__}: {exc}") from None
    # The same answer for a missing, malformed, unknown or revoked key, as the API gives.
    if identity is None:
        raise _fail("the API key is not valid (unknown, malformed or revoked)")
    if identity.tenant_status is not TenantStatus.ACTIVE:
        raise _fail("this key's tenant is suspended; contact the platform operator")
    principal = Principal(actor=f"key:{identity.key_id}", tenant_id=identity.tenant_id, role=identity.role)
    if not principal.may(Permission.ANALYTICS_READ, tenant_id=identity.tenant_id):
        raise _fail(f"this key's role ({identity.role}) lacks the '{Permission.ANALYTICS_READ}' permission")
    if tenant is not None and tenant != identity.tenant_id:
        # Like the API, another tenant looks exactly like a missing one.
        raise _fail(f"a tenant key reads its own tenant only; no tenant '{tenant}' for this key")
    return Scope(tenant_id=identity.tenant_id, caller=principal.actor)


def _from_command_line(ctx: typer.Context, parameter: str) -> bool:
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name == "COMMANDLINE"


def _scope(
    ctx: typer.Context, settings: Settings, *, key: str | None, admin_token: str | None, tenant: str | None
) -> Scope:
    key = (key or "").strip() or None
    admin_token = (admin_token or "").strip() or None
    if tenant is not None and not tenant.strip():
        raise _fail("--tenant must not be empty", 2)
    if key and admin_token:
        # A flag on the command line says what this call means; it beats the other credential's env variable.
        key_flag, token_flag = _from_command_line(ctx, "key"), _from_command_line(ctx, "admin_token")
        if key_flag == token_flag:
            raise _fail(
                "both a tenant API key and the operator token were given (--key / PARLEY_API_KEY and "
                "--admin-token / PARLEY_ADMIN_TOKEN): pass one",
                2,
            )
        key, admin_token = (key, None) if key_flag else (None, admin_token)
    if admin_token:
        configured = settings.admin_token.get_secret_value() if settings.admin_token else None
        if configured is None:
            raise _fail("the operator token is not configured here (PARLEY_ADMIN_TOKEN): use a tenant API key")
        if not hmac.compare_digest(admin_token.encode(), configured.encode()):
            raise _fail("the operator token is not valid")
        return Scope(tenant_id=tenant, caller="platform-admin")
    if key:
        return _key_scope(settings, key, tenant)
    raise _fail(
        "who is asking? pass a tenant API key (--key or PARLEY_API_KEY) or the operator token "
        "(--admin-token or PARLEY_ADMIN_TOKEN)",
        2,
    )


def _open(settings: Settings, scope: Scope):
    """The lake connection in the caller's scope (a context manager)."""
    from core.lake import Lake
    from core.lake_sql import connect

    return connect(lake=Lake(settings.lake_location), **scope.connect_kwargs())


def _no_tables(settings: Settings) -> typer.Exit:
    return _fail(f"no lake tables under {settings.lake_location} (set PARLEY_LAKE_URI or PARLEY_DATA_DIR)")


@lake_app.command("sql")
def sql_command(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="The SQL (DuckDB dialect), or '-' to read it from stdin.")],
    output: FormatOption = OutputFormat.TABLE,
    tenant: TenantOption = None,
    key: KeyOption = None,
    admin_token: AdminTokenOption = None,
    timeout: Annotated[
        float | None, typer.Option(min=0.1, help="Cancel the query after this many seconds.", show_default=False)
    ] = None,
) -> None:
    """Run SQL over the lake's views (bronze_events, silver_messages, gold_tenant_daily, ... see `parley lake tables`).

    A tenant key sees its tenant's rows only; files cannot be read directly (read_parquet, ATTACH, COPY ... refused).
    """
    from core.lake_sql import LakeQueryError

    if sql == "-":
        sql = sys.stdin.read()
    settings = _load_settings()
    scope = _scope(ctx, settings, key=key, admin_token=admin_token, tenant=tenant)
    try:
        with _open(settings, scope) as connection:
            if not connection.views:
                raise _no_tables(settings)
            result = connection.query(sql, timeout_s=timeout)
    except LakeQueryError as exc:
        raise _fail(str(exc)) from None
    _emit(render(result, output))


@lake_app.command("tables")
def tables_command(
    ctx: typer.Context,
    output: FormatOption = OutputFormat.TABLE,
    tenant: TenantOption = None,
    key: KeyOption = None,
    admin_token: AdminTokenOption = None,
) -> None:
    """List the views with their row counts (in your scope) and grain."""
    import pyarrow as pa

    from core.lake_sql import LakeQueryError

    settings = _load_settings()
    scope = _scope(ctx, settings, key=key, admin_token=admin_token, tenant=tenant)
    try:
        with _open(settings, scope) as connection:
            if not connection.views:
                raise _no_tables(settings)
            counts = connection.row_counts()
            views = connection.views
    except LakeQueryError as exc:
        raise _fail(str(exc)) from None
    listing = pa.table(
        {
            "view": [view.name for view in views],
            "rows": pa.array([counts[view.name] for view in views], pa.int64()),
            "grain": [view.grain for view in views],
            "table": [view.table.name for view in views],
        }
    )
    _emit(render(listing, output))


def _emit(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `parley lake sql ... | head`: the reader has all it wanted
        sys.stdout = io.TextIOWrapper(io.BytesIO())
        raise typer.Exit(0) from None


# ---------------------------------------------------------------------------------------------------------------------
# Rendering: a pyarrow Table as an aligned text table, CSV or JSON (a list of objects). Dates and times as ISO strings.


def _interval(months: int, days: int, nanoseconds: int) -> str:
    seconds = nanoseconds / 1e9
    return f"P{months}M{days}DT{seconds:g}S"


def plain(value: Any) -> Any:
    """A JSON-ready value: ISO strings for dates and times, numbers for decimals, None for NaN and infinities."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _interval(0, value.days, (value.seconds * 1_000_000 + value.microseconds) * 1000)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if type(value).__name__ == "MonthDayNano":  # pyarrow's interval (a named tuple)
        return _interval(value.months, value.days, value.nanoseconds)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)  # UUID and anything else


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
        return f"{value:.6g}"
    return f"{value:.6f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"


def _text(value: Any, *, null: str) -> str:
    """One cell as text (CSV and the text table)."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else repr(value)
    converted = plain(value)
    if isinstance(converted, list | dict):
        return json.dumps(converted, ensure_ascii=False)
    return str(converted)


def _unique_names(names: list[str]) -> list[str]:
    """Column names as JSON keys: a repeated name (`SELECT a.id, b.id`) gets a suffix instead of overwriting."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        candidate = name
        while candidate in seen:
            seen[name] += 1
            candidate = f"{name}_{seen[name]}"
        seen.setdefault(candidate, 0)
        unique.append(candidate)
    return unique


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    renamed = table.rename_columns(_unique_names(table.column_names))
    return renamed.to_pylist()


def to_json(table: pa.Table) -> str:
    rows = [{name: plain(value) for name, value in row.items()} for row in _rows(table)]
    return json.dumps(rows, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def to_csv(table: pa.Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    for batch in table.to_batches():
        columns = [column.to_pylist() for column in batch.columns]
        for row in zip(*columns, strict=True):
            writer.writerow([_text(value, null="") for value in row])
    return buffer.getvalue()


def _cut(text: str) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def to_text_table(table: pa.Table) -> str:
    import pyarrow as pa

    numeric = [
        pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_decimal(field.type)
        for field in table.schema
    ]
    cells = []
    for batch in table.to_batches():
        columns = [column.to_pylist() for column in batch.columns]
        for row in zip(*columns, strict=True):
            cells.append([_cut(_float_text(v) if isinstance(v, float) else _text(v, null="NULL")) for v in row])
    header = [_cut(name) for name in table.column_names]
    widths = [max([len(header[i]), *(len(row[i]) for row in cells)]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        return "  ".join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(header), "  ".join("-" * width for width in widths)]
    out += [line(row) for row in cells]
    out.append(f"({table.num_rows} row{'' if table.num_rows == 1 else 's'})")
    return "\n".join(out) + "\n"


def render(table: pa.Table, output: OutputFormat) -> str:
    if output is OutputFormat.JSON:
        return to_json(table)
    if output is OutputFormat.CSV:
        return to_csv(table)
    return to_text_table(table)


@lake_app.command("drain")
def drain() -> None:
    """Drain the outbox into bronze/events now (what the pipelines' sensor does every 30 s), and print what moved."""
    from dataclasses import asdict

    from core import outbox
    from core.db import EmbeddedPostgres
    from core.lake import Lake

    settings = _load_settings()
    embedded = EmbeddedPostgres(settings.postgres_data_dir) if settings.uses_embedded_postgres else None
    try:
        url = embedded.start() if embedded else settings.postgres_url
        drained = outbox.drain(url, Lake(settings.lake_location))
    finally:
        if embedded is not None:
            embedded.stop()
    if drained.busy:
        raise _fail("another drain is running (the pipelines' sensor, most likely); nothing was done")
    typer.echo(json.dumps(asdict(drained) | {"seconds": round(drained.seconds, 3)}))
