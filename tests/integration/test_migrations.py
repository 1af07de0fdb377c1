import asyncio
import subprocess
import sys

import psycopg
import pytest

from core.db.migrations import MigrationError, available, migrate

SCHEMA_SNAPSHOT = """
SELECT 'column' AS kind, table_name || '.' || column_name || ':' || data_type || ':' || is_nullable AS item
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'trigger', trigger_name || ':' || event_object_table FROM information_schema.triggers
ORDER BY 1, 2
"""


def schema_of(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(SCHEMA_SNAPSHOT).fetchall()


def applied_versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_first_run_applies_every_file_in_order(fresh_database):
    applied = asyncio.run(migrate(fresh_database))
    assert applied == [m.version for m in available()]
    assert applied == sorted(applied)
    tables = {item.split(".")[0] for kind, item in schema_of(fresh_database) if kind == "column"}
    assert {"tenants", "api_keys", "audit_log", "schema_migrations"} <= tables


def test_running_twice_changes_nothing(fresh_database):
    asyncio.run(migrate(fresh_database))
    before = schema_of(fresh_database)
    versions_before = applied_versions(fresh_database)
    assert asyncio.run(migrate(fresh_database)) == []
    assert schema_of(fresh_database) == before
    assert applied_versions(fresh_database) == versions_before


def test_two_processes_at_once_apply_each_migration_once(fresh_database):
    runner = "import asyncio, sys; from core.db.migrations import migrate; print(asyncio.run(migrate(sys.argv[1])))"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", runner, fresh_database], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    reported = {out.strip() for out, _ in outputs}
    # Exactly one runner did the work; the other waited on the lock and found nothing to do.
    assert reported == {"[]", str([m.version for m in available()])}
    assert applied_versions(fresh_database) == [m.version for m in available()]


def test_an_edited_applied_migration_stops_the_run(fresh_database):
    asyncio.run(migrate(fresh_database))
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0001'")
    with pytest.raises(MigrationError, match=r"0001_tenancy\.sql changed after it was applied"):
        asyncio.run(migrate(fresh_database))


def test_audit_log_is_append_only(fresh_database):
    asyncio.run(migrate(fresh_database))
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (actor, action) VALUES ('platform-admin', 'tenant.create')")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE audit_log SET actor = 'someone-else'")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM audit_log")
        assert conn.execute("SELECT actor FROM audit_log").fetchall() == [("platform-admin",)]
