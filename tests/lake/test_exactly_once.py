"""Every outbox event reaches bronze exactly once: across a crash between the Delta commit and the outbox mark, and
while the serving tier keeps writing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from core import outbox
from core.lake import BRONZE_EVENTS, Lake
from tests.lake.conftest import new_platform_database, write_traffic

CRASH_AFTER_FIRST_COMMIT = """
import os, signal, sys
from core import outbox
from core.lake import Lake
outbox.drain(sys.argv[1], Lake(sys.argv[2]), batch_size=int(sys.argv[3]),
             after_commit=lambda upper: os.kill(os.getpid(), signal.SIGKILL))
"""


def outbox_events(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT event_id::text, tenant_id FROM outbox").fetchall())


def bronze_events(lake: Lake) -> list[tuple[str, str]]:
    table = lake.read(BRONZE_EVENTS, columns=["event_id", "tenant_id"])
    return list(zip(table.column("event_id").to_pylist(), table.column("tenant_id").to_pylist(), strict=True))


@pytest.fixture
def platform(pg_server, tmp_path):
    url = new_platform_database(pg_server, f"once_{uuid.uuid4().hex[:8]}")
    tenants = asyncio.run(write_traffic(url, ["Once A", "Once B"], conversations=60, seed=3))
    return url, tenants, Lake(str(tmp_path / "lake"))


def test_a_crash_between_the_delta_commit_and_the_mark_neither_duplicates_nor_drops(platform, repo_root):
    url, tenants, lake = platform
    written = outbox_events(url)
    assert len(written) > 500 and set(written.values()) == set(tenants)

    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_FIRST_COMMIT, url, lake.root, "200"], cwd=repo_root, timeout=120
    )
    assert crashed.returncode == -9, "the drain died right after its first Delta commit"
    landed = bronze_events(lake)
    assert len(landed) == 200, "the first batch is in the lake"
    assert len(outbox_events(url)) == len(written), "and the outbox was never marked"

    resumed = outbox.drain(url, lake, batch_size=200)
    assert resumed.repaired, "the mark caught up with the lake's own watermark"
    assert resumed.events == len(written) - 200, "the resumed drain did not write the first batch again"
    landed = bronze_events(lake)
    assert len(landed) == len(set(landed)) == len(written), "each event exactly once"
    assert dict(landed) == written, "event by event, with its tenant"
    assert outbox_events(url) == {}, "drained rows leave the outbox"
    assert outbox.drain(url, lake).events == 0, "a drain with nothing new writes nothing"


def test_events_written_during_a_drain_all_land_once(platform):
    url, tenants, lake = platform
    stop = threading.Event()
    added: list[str] = []

    def keep_writing() -> None:
        # A slow transaction that holds an outbox id while others commit: the case a plain id watermark loses.
        with psycopg.connect(url) as conn:
            for _ in range(40):
                if stop.is_set():
                    break
                with conn.transaction():
                    event_id = str(uuid.uuid4())
                    conn.execute(
                        """INSERT INTO outbox (event_id, tenant_id, type, payload)
                           VALUES (%s, %s, 'handoff.requested', %s)""",
                        (event_id, tenants[len(added) % 2], Jsonb({"conversation_id": "c_x", "reason": "test"})),
                    )
                    time.sleep(0.01)
                added.append(event_id)

    before = outbox_events(url)
    writer = threading.Thread(target=keep_writing)
    writer.start()
    drains = 0
    deadline = time.monotonic() + 60
    while (writer.is_alive() or outbox.pending(url)) and time.monotonic() < deadline:
        outbox.drain(url, lake, batch_size=97)
        drains += 1
    stop.set()
    writer.join(timeout=10)
    outbox.drain(url, lake)
    landed = [event_id for event_id, _ in bronze_events(lake)]
    assert drains > 1 and len(added) == 40
    assert len(landed) == len(set(landed)) == len(before) + len(added)
    assert set(landed) == set(before) | set(added)


def test_only_one_drain_runs_at_a_time(platform):
    url, _, lake = platform
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (outbox._LOCK_KEY,))
        assert outbox.drain(url, lake).busy
        holder.execute("SELECT pg_advisory_unlock(%s)", (outbox._LOCK_KEY,))
    assert outbox.drain(url, lake).events > 0


def test_parley_demo_generate_then_lake_drain_move_every_event(pg_server, tmp_path):
    url = new_platform_database(pg_server, f"cli_{uuid.uuid4().hex[:8]}")
    parley = str(Path(sys.executable).with_name("parley"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env |= {"PARLEY_POSTGRES_URL": url, "PARLEY_DATA_DIR": str(tmp_path)}
    generated = subprocess.run(
        [parley, "demo", "generate", "--tenants", "2", "--conversations", "5", "--seed", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stderr
    report = json.loads(generated.stdout)
    assert len(report["tenants"]) == 2 and report["written"]["conversations"] == 10
    assert len(outbox_events(url)) == report["written"]["events"]
    drained = subprocess.run([parley, "lake", "drain"], env=env, capture_output=True, text=True, timeout=120)
    assert drained.returncode == 0, drained.stderr
    assert json.loads(drained.stdout)["events"] == report["written"]["events"]
    assert {t for _, t in bronze_events(Lake(str(tmp_path / "lake")))} == set(report["tenants"])
