import asyncio
import json
import subprocess
import sys

import psycopg

from core import tenancy
from core.db import EmbeddedPostgres, open_database
from core.settings import load_settings


def running(pgdata) -> bool:
    return (pgdata / "postmaster.pid").exists()


def test_start_and_stop_leave_nothing_running(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pg")
    uri = server.start()
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] >= 180000
    server.stop()
    assert not running(tmp_path / "pg")


def test_a_killed_process_does_not_keep_the_server_alive_forever(tmp_path):
    pgdata = tmp_path / "pg"
    # A process that joins the server, then dies by SIGKILL without cleaning up.
    joiner = (
        "import os, signal; from pathlib import Path; from core.db import EmbeddedPostgres;"
        f"EmbeddedPostgres(Path({str(pgdata)!r})).start(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", joiner], timeout=60, check=False)
    assert running(pgdata)
    assert json.loads((pgdata / ".handle_pids.json").read_text()), "the dead process is still counted"
    server = EmbeddedPostgres(pgdata)
    server.start()
    server.stop()
    assert not running(pgdata), "the last live user did not stop the server"


def test_two_data_dirs_are_two_independent_platforms(tmp_path):
    async def scenario():
        one = load_settings(_env_file=None, data_dir=tmp_path / "one")
        two = load_settings(_env_file=None, data_dir=tmp_path / "two")
        async with open_database(one) as db_one, open_database(two) as db_two:
            assert db_one.url != db_two.url
            async with db_one.transaction() as conn:
                created = await tenancy.create_tenant(conn, name="Only In One", actor="test")
            async with db_one.connection() as conn:
                assert await tenancy.get_tenant(conn, tenant_id=created.id) is not None
            async with db_two.connection() as conn:
                assert await tenancy.get_tenant(conn, tenant_id=created.id) is None
                assert await tenancy.list_tenants(conn) == []

    asyncio.run(scenario())
    assert not running(tmp_path / "one" / "postgres") and not running(tmp_path / "two" / "postgres")
