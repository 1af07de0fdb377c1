"""Analysts' SQL over the lake (core/lake_sql.py) and `parley lake` (cli/lake.py), against the shared lakehouse.

Two tenants must never mix: in a tenant's scope every view holds that tenant's rows only, no predicate widens it, and
no SQL reaches the lake's files another way. The CLI runs as a subprocess with real keys minted in the lakehouse's
own platform database.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from psycopg.rows import dict_row
from typer.testing import CliRunner

from cli import lake as lake_cli
from core import tenancy
from core.lake import TABLES, Lake
from core.lake_sql import LakeQueryError, connect, list_views, query, view_name
from core.schemas import Role, TenantStatus
from tests.conftest import ADMIN_TOKEN

PARLEY = str(Path(sys.executable).with_name("parley"))
VIEWS = {spec.name.replace("/", "_"): spec for spec in TABLES}


def expected_counts(lakehouse, tenant_id: str | None) -> dict[str, int]:
    """Rows per view straight from the Delta tables, for one tenant or all."""
    ids = None if tenant_id is None else [tenant_id]
    return {
        view_name(spec): lakehouse.lake.read(spec, tenant_ids=ids, columns=["tenant_id"]).num_rows for spec in TABLES
    }


def tenants_per_view_sql() -> str:
    return " UNION ALL ".join(
        f"SELECT '{name}' AS view, tenant_id, count(*) AS n FROM {name} GROUP BY tenant_id" for name in VIEWS
    )


# --- the engine --------------------------------------------------------------------------------------------------


def test_every_table_is_a_view_named_layer_name(lakehouse):
    with connect(lake=lakehouse.lake, all_tenants=True) as connection:
        assert {view.name for view in connection.views} == set(VIEWS) >= {"bronze_events", "gold_tenant_daily"}
        assert all(view.grain == VIEWS[view.name].grain for view in connection.views)
        listed = {
            row["table_name"]
            for row in connection.query("SELECT table_name FROM information_schema.tables").to_pylist()
        }
        assert set(VIEWS) <= listed


@pytest.mark.parametrize("which", [0, 1])
def test_a_tenant_sees_only_its_own_rows_in_every_view(lakehouse, which):
    tenant = lakehouse.tenants[which]
    with connect(lake=lakehouse.lake, tenant_id=tenant) as connection:
        rows = connection.query(tenants_per_view_sql()).to_pylist()
    assert {row["tenant_id"] for row in rows} == {tenant}
    assert {row["view"]: row["n"] for row in rows} == expected_counts(lakehouse, tenant)


@pytest.mark.parametrize(
    "where",
    [
        "tenant_id = '{other}'",
        "tenant_id = '{other}' OR true",
        "tenant_id <> '' OR tenant_id IS NULL",
        "tenant_id IN ('{own}', '{other}')",
        "NOT (tenant_id = '{own}')",
    ],
)
def test_no_predicate_widens_a_tenants_scope(lakehouse, where):
    own, other = lakehouse.tenants
    predicate = where.format(own=own, other=other)
    sql = " UNION ALL ".join(f"SELECT DISTINCT tenant_id FROM {name} WHERE {predicate}" for name in VIEWS)
    with connect(lake=lakehouse.lake, tenant_id=own) as connection:
        assert set(connection.query(sql).column("tenant_id").to_pylist()) <= {own}


def test_the_scope_holds_when_the_query_never_names_tenant_id(lakehouse):
    """count(*) and other projections without the tenant column still get the tenant's filter from the dataset."""
    own = lakehouse.tenants[0]
    expected = expected_counts(lakehouse, own)
    with connect(lake=lakehouse.lake, tenant_id=own) as connection:
        for name in VIEWS:
            for sql in (
                f"SELECT count(*) FROM {name}",
                f"SELECT count(*) FROM (SELECT 1 FROM {name} USING SAMPLE 100 PERCENT (system))",
            ):
                assert connection.query(sql).column(0)[0].as_py() == expected[name], sql


def test_the_operator_sees_every_tenant(lakehouse):
    with connect(lake=lakehouse.lake, all_tenants=True) as connection:
        assert connection.all_tenants
        rows = connection.query(tenants_per_view_sql()).to_pylist()
    for name in VIEWS:
        assert {row["tenant_id"] for row in rows if row["view"] == name} == set(lakehouse.tenants), name
    totals = {name: sum(row["n"] for row in rows if row["view"] == name) for name in VIEWS}
    assert totals == expected_counts(lakehouse, None)


def test_list_views_counts_rows_in_scope(lakehouse):
    tenant = lakehouse.tenants[1]
    views = list_views(lake=lakehouse.lake, tenant_id=tenant)
    assert {view.name: view.rows for view in views} == expected_counts(lakehouse, tenant)
    everyone = list_views(lake=lakehouse.lake, all_tenants=True)
    assert {view.name: view.rows for view in everyone} == expected_counts(lakehouse, None)


def _file_attacks(lakehouse, tmp_path: Path) -> dict[str, str]:
    root = str(lakehouse.root)
    # Another tenant's file: the files DuckDB may read are exactly the caller's own current ones.
    other = lakehouse.tenants[1]
    parquet = next(f for f in lakehouse.lake.table("silver/messages").file_uris() if f"tenant_id={other}/" in f)
    parquet = parquet.removeprefix("file://")
    out = tmp_path / "leak.csv"
    return {
        "read_parquet a lake file": f"SELECT * FROM read_parquet('{parquet}')",
        "read_parquet a glob": f"SELECT count(*) FROM read_parquet('{root}/silver/messages/**/*.parquet')",
        "a file path as a table": f"SELECT * FROM '{parquet}'",
        "parquet_metadata": f"SELECT * FROM parquet_metadata('{parquet}')",
        "delta_scan": f"SELECT count(*) FROM delta_scan('{lakehouse.lake.uri('silver/messages')}')",
        "glob": f"SELECT * FROM glob('{root}/*')",
        "read_text": "SELECT * FROM read_text('/etc/hostname')",
        "read_csv": f"SELECT * FROM read_csv('{root}/silver/messages/_delta_log/00000000000000000000.json')",
        "attach": f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        "copy to": f"COPY (SELECT * FROM silver_messages) TO '{out}'",
        "export database": f"EXPORT DATABASE '{tmp_path / 'export'}'",
        "set external access": "SET enable_external_access = true",
        "reset external access": "RESET enable_external_access",
        "unlock": "SET lock_configuration = false",
        "python replacements": "SET python_enable_replacements = true",
        "allowed directories": f"SET allowed_directories = ['{root}']",
        "install": "INSTALL delta",
        "load": "LOAD delta",
        "load httpfs": "LOAD httpfs",
        "then read": f"SET enable_external_access = true; SELECT * FROM read_parquet('{parquet}')",
    }


ATTACKS = [
    "read_parquet a lake file",
    "read_parquet a glob",
    "a file path as a table",
    "parquet_metadata",
    "delta_scan",
    "glob",
    "read_text",
    "read_csv",
    "attach",
    "copy to",
    "export database",
    "set external access",
    "reset external access",
    "unlock",
    "python replacements",
    "allowed directories",
    "install",
    "load",
    "load httpfs",
    "then read",
]


# The operator's scope includes every tenant's current data files: reading one directly is in scope, not an attack.
IN_OPERATOR_SCOPE = {"read_parquet a lake file", "a file path as a table", "parquet_metadata"}


@pytest.mark.parametrize(
    ("attack", "scope"),
    [(a, s) for a in ATTACKS for s in ("tenant", "operator") if not (s == "operator" and a in IN_OPERATOR_SCOPE)],
)
def test_sql_cannot_reach_files_or_unlock_the_connection(lakehouse, tmp_path, attack, scope):
    sql = _file_attacks(lakehouse, tmp_path)[attack]
    own = lakehouse.tenants[0]
    kwargs = {"tenant_id": own} if scope == "tenant" else {"all_tenants": True}
    with connect(lake=lakehouse.lake, **kwargs) as connection:
        with pytest.raises(LakeQueryError) as refused:
            connection.query(sql)
        assert "Traceback" not in str(refused.value) and str(refused.value)
        # The connection still works, in the same scope.
        seen = connection.query("SELECT DISTINCT tenant_id FROM silver_messages").column(0).to_pylist()
        assert set(seen) == ({own} if scope == "tenant" else set(lakehouse.tenants))
    assert list(tmp_path.iterdir()) == []  # nothing was written: no COPY output, no attached file, no export


def test_a_tenant_may_read_its_own_current_files_and_no_others(lakehouse):
    own, other = lakehouse.tenants
    files = lakehouse.lake.table("silver/messages").file_uris()
    mine = next(f for f in files if f"tenant_id={own}/" in f).removeprefix("file://")
    theirs = next(f for f in files if f"tenant_id={other}/" in f).removeprefix("file://")
    with connect(lake=lakehouse.lake, tenant_id=own) as connection:
        direct = connection.query(f"SELECT count(*) AS n FROM read_parquet('{mine}')").column("n")[0].as_py()
        assert direct == connection.query("SELECT count(*) AS n FROM silver_messages").column("n")[0].as_py() > 0
        with pytest.raises(LakeQueryError, match="Permission"):
            connection.query(f"SELECT count(*) FROM read_parquet('{theirs}')")


def test_a_python_variable_is_not_a_table(lakehouse):
    # DuckDB would otherwise scan any variable of the calling frames by name: here an unfiltered dataset.
    unfiltered = lakehouse.lake.dataset("silver/messages")
    assert unfiltered is not None
    with (
        connect(lake=lakehouse.lake, tenant_id=lakehouse.tenants[0]) as connection,
        pytest.raises(LakeQueryError, match="unfiltered"),
    ):
        connection.query("SELECT count(*) FROM unfiltered")


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM silver_mesages", "silver_mesages"),
        ("SELECT no_such_column FROM gold_tenant_daily", "no_such_column"),
        ("SELECT 'x'::INT", "Conversion Error"),
        ("   ;  ", "no SQL statement"),
    ],
)
def test_bad_sql_raises_a_clear_error(lakehouse, sql, says):
    with pytest.raises(LakeQueryError) as failed:
        query(lake=lakehouse.lake, sql=sql, tenant_id=lakehouse.tenants[0])
    assert says.lower() in str(failed.value).lower()


def test_the_scope_is_always_explicit(lakehouse):
    with pytest.raises(ValueError, match="all_tenants"):
        query(lake=lakehouse.lake, sql="SELECT 1")
    with pytest.raises(ValueError, match="not both"):
        query(lake=lakehouse.lake, sql="SELECT 1", tenant_id=lakehouse.tenants[0], all_tenants=True)
    with pytest.raises(ValueError, match="non-empty"):
        query(lake=lakehouse.lake, sql="SELECT 1", tenant_id=" ")


def test_results_are_arrow_with_utc_timestamps_and_parameters(lakehouse):
    tenant = lakehouse.tenants[0]
    with connect(lake=lakehouse.lake, tenant_id=tenant) as connection:
        result = connection.query(
            "SELECT created_at, date FROM silver_messages WHERE tenant_id = ? ORDER BY created_at LIMIT 3",
            params=[tenant],
        )
        assert isinstance(result, pa.Table) and result.num_rows == 3
        assert result.schema.field("created_at").type.tz in ("UTC", "Etc/UTC")
        assert connection.df("SELECT count(*) AS n FROM gold_tenant_daily").n.iloc[0] > 0


def test_a_lake_without_tables_has_no_views(tmp_path):
    with connect(lake=Lake(tmp_path), tenant_id="t_nobody") as connection:
        assert connection.views == ()
        assert connection.query("SELECT 41 + 1 AS n").to_pylist() == [{"n": 42}]
        with pytest.raises(LakeQueryError, match="silver_messages"):
            connection.query("SELECT * FROM silver_messages")


def test_a_runaway_query_is_cancelled_at_its_timeout(lakehouse):
    with connect(lake=lakehouse.lake, tenant_id=lakehouse.tenants[0]) as connection:
        started = time.monotonic()
        with pytest.raises(LakeQueryError, match=r"longer than 0\.3 s"):
            connection.query("SELECT count(*) FROM range(1000000000000) a, silver_messages b", timeout_s=0.3)
        assert time.monotonic() - started < 10
        assert connection.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_a_query_costs_little_beyond_registering_the_views(lakehouse):
    """Open (every table registered for one tenant), lock, run, close: the whole call, measured."""
    tenant = lakehouse.tenants[0]
    sql = "SELECT date, conversations, deflection_rate FROM gold_tenant_daily ORDER BY date"
    query(lake=lakehouse.lake, sql=sql, tenant_id=tenant)  # warm the imports and the OS cache
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        query(lake=lakehouse.lake, sql=sql, tenant_id=tenant)
        timings.append(time.perf_counter() - started)
    with connect(lake=lakehouse.lake, tenant_id=tenant) as connection:
        started = time.perf_counter()
        connection.query(sql)
        on_open = time.perf_counter() - started
    print(f"\nlake query: median {statistics.median(timings) * 1000:.0f} ms per call, {on_open * 1000:.1f} ms on open")
    # Generous for a busy 2-core machine; measured about 0.15 s a call and 10 ms a query here.
    assert statistics.median(timings) < 2.0
    assert on_open < 0.5


# --- rendering ---------------------------------------------------------------------------------------------------


def test_json_and_csv_rendering_of_awkward_values():
    table = pa.table(
        {
            "at": pa.array([datetime(2026, 11, 20, 17, 5, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            "day": pa.array([date(2026, 11, 20)], pa.date32()),
            "n": pa.array([Decimal("150")], pa.decimal128(38, 0)),
            "rate": [float("nan")],
            "tags": [["a", "b"]],
            "empty": pa.array([None], pa.string()),
        }
    )
    rows = json.loads(lake_cli.to_json(table))
    assert rows == [
        {
            "at": "2026-11-20T17:05:00+00:00",
            "day": "2026-11-20",
            "n": 150,
            "rate": None,
            "tags": ["a", "b"],
            "empty": None,
        }
    ]
    parsed = list(csv.DictReader(io.StringIO(lake_cli.to_csv(table))))
    assert parsed == [
        {
            "at": "2026-11-20T17:05:00+00:00",
            "day": "2026-11-20",
            "n": "150",
            "rate": "nan",
            "tags": '["a", "b"]',
            "empty": "",
        }
    ]
    text = lake_cli.to_text_table(table).splitlines()
    assert text[0].split() == ["at", "day", "n", "rate", "tags", "empty"] and text[-1] == "(1 row)"
    assert "NULL" in text[2]


def test_json_keeps_repeated_column_names_apart():
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["id", "id"])
    assert json.loads(lake_cli.to_json(table)) == [{"id": 1, "id_1": 2}]


# --- the CLI -----------------------------------------------------------------------------------------------------


async def _mint_keys(url: str, own: str, other: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row, autocommit=True) as conn:
        keys = {}
        for label, tenant, role in [
            ("analyst_a", own, Role.ANALYST),
            ("viewer_b", other, Role.VIEWER),
            ("agent_a", own, Role.AGENT),
            ("revoked_a", own, Role.ANALYST),
        ]:
            record, keys[label] = await tenancy.create_api_key(
                conn, tenant_id=tenant, role=role, name=f"lake sql test {label}", actor="test"
            )
            if label.startswith("revoked"):
                assert await tenancy.revoke_api_key(conn, tenant_id=tenant, key_id=record.id, actor="test")
        return keys


@pytest.fixture(scope="module")
def keys(lakehouse) -> dict[str, str]:
    return asyncio.run(_mint_keys(lakehouse.db_url, *lakehouse.tenants))


@pytest.fixture
def cli_env(lakehouse, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return {
        **env,
        "PARLEY_POSTGRES_URL": lakehouse.db_url,
        "PARLEY_LAKE_URI": str(lakehouse.root),
        "PARLEY_DATA_DIR": str(tmp_path),
    }


def parley(*args: str, env: dict[str, str], cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PARLEY, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_cli_tenant_key_sees_only_its_tenant_in_json(lakehouse, keys, cli_env, tmp_path):
    own, other = lakehouse.tenants
    result = parley(
        "lake", "sql", tenants_per_view_sql(), "--format", "json", "--key", keys["analyst_a"], env=cli_env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {row["tenant_id"] for row in rows} == {own}
    assert {row["view"]: row["n"] for row in rows} == expected_counts(lakehouse, own)
    assert other not in result.stdout


def test_cli_key_from_the_environment_and_csv_with_iso_times(lakehouse, keys, cli_env, tmp_path):
    other = lakehouse.tenants[1]
    env = {**cli_env, "PARLEY_API_KEY": keys["viewer_b"]}
    sql = "SELECT tenant_id, message_id, created_at, date, answered FROM silver_messages ORDER BY created_at"
    result = parley("lake", "sql", sql, "--format", "csv", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == expected_counts(lakehouse, other)["silver_messages"]
    assert {row["tenant_id"] for row in rows} == {other}
    first = datetime.fromisoformat(rows[0]["created_at"])
    assert first.utcoffset().total_seconds() == 0 and date.fromisoformat(rows[0]["date"]) == first.date()
    assert {row["answered"] for row in rows} <= {"true", "false", ""}


def test_cli_default_output_is_an_aligned_table(lakehouse, keys, cli_env, tmp_path):
    sql = "SELECT date, conversations, deflection_rate FROM gold_tenant_daily ORDER BY date"
    result = parley("lake", "sql", sql, "--key", keys["analyst_a"], env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    days = expected_counts(lakehouse, lakehouse.tenants[0])["gold_tenant_daily"]
    assert lines[0].split() == ["date", "conversations", "deflection_rate"]
    assert set(lines[1].replace(" ", "")) == {"-"} and lines[-1] == f"({days} rows)"
    assert len({len(line) for line in lines[2:-1]}) == 1  # right-aligned numbers: every row is as wide
    date.fromisoformat(lines[2].split()[0])


def test_cli_a_tenant_key_cannot_reach_another_tenant(lakehouse, keys, cli_env, tmp_path):
    other = lakehouse.tenants[1]
    widened = parley(
        "lake",
        "sql",
        "SELECT * FROM silver_tenants",
        "--tenant",
        other,
        "--key",
        keys["analyst_a"],
        env=cli_env,
        cwd=tmp_path,
    )
    assert widened.returncode == 1 and widened.stdout == ""
    assert "own tenant only" in widened.stderr
    looked_for = parley(
        "lake",
        "sql",
        f"SELECT * FROM silver_tenants WHERE tenant_id = '{other}'",
        "-f",
        "json",
        "--key",
        keys["analyst_a"],
        env=cli_env,
        cwd=tmp_path,
    )
    assert looked_for.returncode == 0 and json.loads(looked_for.stdout) == []
    files = parley(
        "lake",
        "sql",
        f"SELECT * FROM read_parquet('{lakehouse.root}/silver/messages/**/*.parquet')",
        "--key",
        keys["analyst_a"],
        env=cli_env,
        cwd=tmp_path,
    )
    assert files.returncode == 1 and "disabled by configuration" in files.stderr
    assert other not in files.stdout + widened.stdout + looked_for.stdout


@pytest.mark.parametrize(
    ("args", "extra_env", "code", "says"),
    [
        (["--key", "prl_not_a_key"], {}, 1, "not valid"),
        (["--key", "revoked_a"], {}, 1, "not valid"),
        (["--key", "agent_a"], {}, 1, "lacks the 'analytics:read' permission"),
        ([], {}, 2, "who is asking"),
        (["--admin-token", "y" * 32], {"PARLEY_ADMIN_TOKEN": ADMIN_TOKEN}, 1, "operator token is not valid"),
        (["--admin-token", ADMIN_TOKEN], {}, 1, "not configured"),
        (["--key", "analyst_a", "--admin-token", ADMIN_TOKEN], {"PARLEY_ADMIN_TOKEN": ADMIN_TOKEN}, 2, "pass one"),
    ],
    ids=["garbage key", "revoked key", "no permission", "nobody", "wrong token", "no token configured", "both"],
)
def test_cli_refuses_without_a_valid_credential(keys, cli_env, tmp_path, args, extra_env, code, says):
    args = [keys.get(arg, arg) for arg in args]
    result = parley(
        "lake", "sql", "SELECT count(*) FROM silver_messages", *args, env={**cli_env, **extra_env}, cwd=tmp_path
    )
    assert result.returncode == code, result.stderr
    assert says in result.stderr and result.stdout == ""
    assert "Traceback" not in result.stderr


def test_cli_bad_sql_fails_with_duckdbs_message(keys, cli_env, tmp_path):
    result = parley(
        "lake", "sql", "SELEC * FROM gold_tenant_daily", "--key", keys["analyst_a"], env=cli_env, cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.startswith("parley: Parser Error: syntax error") and "Traceback" not in result.stderr


def test_cli_operator_sees_every_tenant_or_narrows_to_one(lakehouse, cli_env, tmp_path):
    env = {**cli_env, "PARLEY_ADMIN_TOKEN": ADMIN_TOKEN}
    sql = "SELECT tenant_id, count(*) AS n FROM gold_tenant_daily GROUP BY ALL ORDER BY tenant_id"
    everyone = parley("lake", "sql", sql, "-f", "json", env=env, cwd=tmp_path)
    assert everyone.returncode == 0, everyone.stderr
    assert {row["tenant_id"] for row in json.loads(everyone.stdout)} == set(lakehouse.tenants)
    other = lakehouse.tenants[1]
    narrowed = parley("lake", "sql", sql, "-f", "json", "--tenant", other, env=env, cwd=tmp_path)
    assert narrowed.returncode == 0, narrowed.stderr
    assert [row["tenant_id"] for row in json.loads(narrowed.stdout)] == [other]


def test_cli_tables_lists_views_with_rows_in_scope_and_grain(lakehouse, keys, cli_env, tmp_path):
    result = parley("lake", "tables", "-f", "json", "--key", keys["viewer_b"], env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert {row["view"]: row["rows"] for row in listing} == expected_counts(lakehouse, lakehouse.tenants[1])
    assert all(row["grain"] == VIEWS[row["view"]].grain and row["table"] == VIEWS[row["view"]].name for row in listing)
    text = parley("lake", "tables", "--key", keys["viewer_b"], env=cli_env, cwd=tmp_path)
    assert text.returncode == 0 and text.stdout.splitlines()[0].split() == ["view", "rows", "grain", "table"]


def test_cli_refuses_a_lake_without_tables(cli_env, tmp_path):
    env = {**cli_env, "PARLEY_LAKE_URI": str(tmp_path / "nowhere"), "PARLEY_ADMIN_TOKEN": ADMIN_TOKEN}
    result = parley("lake", "sql", "SELECT 1", env=env, cwd=tmp_path)
    assert result.returncode == 1 and "no lake tables under" in result.stderr


def test_cli_refuses_a_suspended_tenants_key(lakehouse, monkeypatch, tmp_path):
    """In process, with the key lookup stubbed: suspending a tenant of the shared lakehouse would disturb others."""

    async def suspended(settings, key):
        return tenancy.KeyIdentity(
            key_id="k_x", tenant_id=lakehouse.tenants[0], role=Role.ANALYST, tenant_status=TenantStatus.SUSPENDED
        )

    monkeypatch.setattr(lake_cli, "_identity", suspended)
    for name in [name for name in os.environ if name.startswith("PARLEY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PARLEY_LAKE_URI", str(lakehouse.root))
    monkeypatch.setenv("PARLEY_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(lake_cli.lake_app, ["sql", "SELECT 1", "--key", "prl_whatever"])
    assert result.exit_code == 1
    assert "suspended" in result.output
