"""SQL over the lakehouse for analysts: DuckDB with every lake table as a view, for one tenant or for all of them.

Each table that exists is a view named `<layer>_<name>` (silver/messages → silver_messages). A table partitioned by
tenant on a local lake is read by DuckDB's own Parquet reader (twice as fast as through Arrow, bench/lake_query.py):
the view is `read_parquet` over the table's current files — in a tenant's scope only that tenant's partition files,
and filtered to the tenant again — and exactly those files are DuckDB's `allowed_paths`. Other tables (unpartitioned,
or on object storage) are registered as Arrow datasets, filtered to the tenant (`Lake.dataset(table, tenant_id=...)`),
so DuckDB's own filters are ANDed with the tenant's and no predicate can widen it. Once the views exist the
connection is closed to everything else before any caller SQL runs:

- `enable_external_access = false`: DuckDB opens no file or URL itself (read_parquet, delta_scan, glob, read_csv,
  ATTACH of a file, COPY ... TO, EXPORT DATABASE, INSTALL/LOAD of extensions) but the allowed files, which it only
  reads: no other tenant's file, nor an older version's, is among them. Registered datasets still work, because
  pyarrow, not DuckDB, reads their files.
- `python_enable_replacements = false`: a query cannot name a Python variable of the calling code (an unfiltered
  dataset in some frame) as if it were a table.
- no autoloading or autoinstalling of extensions, TimeZone UTC (the lake's days are UTC days, as in gold).
- `lock_configuration = true`, last: none of the above can be SET or RESET by the caller's SQL.

The operator's scope (`all_tenants=True`) is the same connection over every tenant's rows. Scope is never implied:
a call names a tenant or asks for all tenants, so a missing tenant id cannot turn into "everything".

What a caller can still do is harmless to others: each connection is its own in-memory database, so temporary tables
or dropped views last until it closes and nobody else sees them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

import duckdb
import pyarrow as pa
from deltalake.exceptions import DeltaError

from core.lake import TABLES, Lake, TableSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LakeConnection",
    "LakeQueryError",
    "LakeView",
    "connect",
    "list_views",
    "query",
    "view_name",
]

# Applied in this order before any caller SQL (after `allowed_paths`); lock_configuration must come last.
_HARDENING = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET TimeZone = 'UTC'",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)
_PARTITION_TYPES = {"tenant_id": "VARCHAR", "date": "DATE"}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _parquet_files(lake: Lake, table: TableSpec, scope: str | None) -> list[str] | None:
    """The table's current data files in scope, when DuckDB may read them itself (a local lake, partitioned by
    tenant); None otherwise."""
    if not lake.is_local or table.partition_by[:1] != ("tenant_id",):
        return None
    delta = lake.table(table)
    if delta is None:
        return None
    root = lake.uri(table).removeprefix("file://")
    actions = delta.get_add_actions(flatten=True)
    paths = actions.column("path").to_pylist()
    tenants = actions.column("partition.tenant_id").to_pylist()
    return [f"{root}/{unquote(path)}" for path, tenant in zip(paths, tenants, strict=True) if scope in (None, tenant)]


def _parquet_view(table: TableSpec, files: list[str], scope: str | None) -> str:
    types = ", ".join(f"{_literal(name)}: {_PARTITION_TYPES[name]}" for name in table.partition_by)
    source = (
        f"read_parquet([{', '.join(_literal(f) for f in files)}], hive_partitioning = true, "
        f"hive_types = {{{types}}}, union_by_name = true)"
    )
    where = f" WHERE tenant_id = {_literal(scope)}" if scope is not None else ""
    return f'CREATE VIEW "{view_name(table)}" AS SELECT * FROM {source}{where}'  # noqa: S608 (our paths and ids)


class LakeQueryError(Exception):
    """The SQL failed or was refused (the message is DuckDB's), or a lake table could not be opened."""


@dataclass(frozen=True)
class LakeView:
    """A lake table as the SQL sees it. `rows` is its row count in scope when asked for (see `list_views`)."""

    name: str
    table: TableSpec
    rows: int | None = None

    @property
    def grain(self) -> str:
        return self.table.grain


def view_name(table: TableSpec | str) -> str:
    """The view of a lake table: `silver/messages` → `silver_messages`."""
    return (table.name if isinstance(table, TableSpec) else table).replace("/", "_")


class LakeConnection:
    """A DuckDB connection over the lake's views in one scope; made by `connect`. Not for use from several threads."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, views: tuple[LakeView, ...], tenant_id: str | None):
        self._con = con
        self.views = views
        self.tenant_id = tenant_id  # None: every tenant (the operator's scope)

    @property
    def all_tenants(self) -> bool:
        return self.tenant_id is None

    def query(self, sql: str, *, params: Sequence | Mapping | None = None, timeout_s: float | None = None) -> pa.Table:
        """Run `sql` (several statements: the last one's result) with optional `?`/`$name` `params` and return its
        rows. LakeQueryError if it fails, or when it runs past `timeout_s` seconds (it is interrupted then)."""
        if not sql or not sql.strip().strip(";").strip():
            raise LakeQueryError("no SQL statement given")
        timed_out = threading.Event()

        def cancel() -> None:
            timed_out.set()
            self._con.interrupt()

        timer = threading.Timer(timeout_s, cancel) if timeout_s is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            result = self._con.execute(sql, params) if params is not None else self._con.execute(sql)
            return result.to_arrow_table() if result is not None else pa.table({})
        except duckdb.InterruptException:
            if timed_out.is_set():
                raise LakeQueryError(f"query cancelled: it ran longer than {timeout_s:g} s") from None
            raise LakeQueryError("query cancelled") from None
        except duckdb.Error as exc:
            raise LakeQueryError(str(exc).strip()) from None
        except pa.ArrowException as exc:
            raise LakeQueryError(f"reading the lake failed: {exc}") from None
        finally:
            if timer is not None:
                timer.cancel()

    def df(self, sql: str, *, params: Sequence | Mapping | None = None, timeout_s: float | None = None) -> pd.DataFrame:
        """`query` as a pandas DataFrame (for notebooks)."""
        return self.query(sql, params=params, timeout_s=timeout_s).to_pandas()

    def row_counts(self) -> dict[str, int]:
        """Rows of each view in this connection's scope."""
        if not self.views:
            return {}
        # View names come from TABLES (letters and underscores), never from the caller.
        sql = " UNION ALL ".join(
            f"SELECT '{view.name}' AS view, count(*) AS n FROM \"{view.name}\""  # noqa: S608
            for view in self.views
        )
        rows = self.query(sql).to_pylist()
        return {row["view"]: row["n"] for row in rows}

    def close(self) -> None:
        self._con.close()


def _scope(tenant_id: str | None, all_tenants: bool) -> str | None:
    if all_tenants:
        if tenant_id is not None:
            raise ValueError("give tenant_id or all_tenants=True, not both")
        return None
    if tenant_id is None:
        raise ValueError("give tenant_id (one tenant's rows) or all_tenants=True (the operator's view)")
    if not isinstance(tenant_id, str) or not tenant_id.strip():
        raise ValueError("tenant_id must be a non-empty string")
    return tenant_id


@contextmanager
def connect(
    *,
    lake: Lake,
    tenant_id: str | None = None,
    all_tenants: bool = False,
    tables: Iterable[TableSpec] = TABLES,
) -> Iterator[LakeConnection]:
    """A locked-down DuckDB connection whose views are the lake's existing `tables` in one tenant's scope
    (`tenant_id`) or every tenant's (`all_tenants=True`); closed on exit."""
    scope = _scope(tenant_id, all_tenants)
    con = duckdb.connect(":memory:", config={"python_enable_replacements": False})
    try:
        views, allowed = [], []
        for table in tables:
            try:
                files = _parquet_files(lake, table, scope)
                dataset = None if files else lake.dataset(table, tenant_id=scope)
            except (DeltaError, OSError, pa.ArrowException) as exc:
                raise LakeQueryError(f"cannot open lake table {table.name} at {lake.uri(table)}: {exc}") from None
            view = LakeView(name=view_name(table), table=table)
            if files:
                con.execute(_parquet_view(table, files, scope))
                allowed += files
            elif dataset is not None:
                con.register(view.name, dataset)
            else:
                continue
            views.append(view)
        con.execute(f"SET allowed_paths = [{', '.join(_literal(path) for path in allowed)}]")
        for statement in _HARDENING:
            con.execute(statement)
        connection = LakeConnection(con, views=tuple(views), tenant_id=scope)
    except BaseException:
        con.close()
        raise
    try:
        yield connection
    finally:
        con.close()


def query(
    *,
    lake: Lake,
    sql: str,
    tenant_id: str | None = None,
    all_tenants: bool = False,
    timeout_s: float | None = None,
) -> pa.Table:
    """Run `sql` over the lake in one tenant's scope (`tenant_id`) or every tenant's (`all_tenants=True`)."""
    with connect(lake=lake, tenant_id=tenant_id, all_tenants=all_tenants) as connection:
        return connection.query(sql, timeout_s=timeout_s)


def list_views(*, lake: Lake, tenant_id: str | None = None, all_tenants: bool = False) -> list[LakeView]:
    """The views over the lake's existing tables, each with its row count in scope."""
    with connect(lake=lake, tenant_id=tenant_id, all_tenants=all_tenants) as connection:
        counts = connection.row_counts()
        return [LakeView(name=view.name, table=view.table, rows=counts[view.name]) for view in connection.views]
