"""`parley serve --seed-demo --pipelines` (what `make run` starts): Dagster's webserver and daemon beside the API, their
instance in the platform's PostgreSQL, and the outbox sensor draining a chat into the lake without anyone asking."""

import os
import time

import httpx
import psycopg
import pytest

from core.lake import BRONZE_EVENTS, Lake
from tests.conftest import free_port
from tests.integration.test_serve import postgres_running, start, stop, wait_ready

LAKE_TIMEOUT_S = 240


def dagster_processes(data_dir) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if f"DAGSTER_HOME={data_dir}/dagster".encode() in environ.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.timeout(600)
def test_make_run_starts_the_pipelines_and_a_chat_reaches_the_lake(tmp_path):
    port, dagster_port = free_port(), free_port()
    process, banner = start(tmp_path, port, extra_args=["--pipelines"], env={"PARLEY_DAGSTER_PORT": str(dagster_port)})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        assert banner["pipelines"] == f"http://127.0.0.1:{dagster_port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{banner['pipelines']}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("the Dagster webserver never answered")

        owner = {"Authorization": f"Bearer {banner['owner key']}"}
        conversation = httpx.post(f"{base}/v1/conversations", headers=owner, json={}, timeout=10).json()
        said = httpx.post(
            f"{base}/v1/conversations/{conversation['id']}/messages", headers=owner, json={"text": "hello"}, timeout=30
        )
        assert said.status_code == 200, said.text

        lake = Lake(str(tmp_path / "lake"))
        deadline = time.monotonic() + LAKE_TIMEOUT_S
        landed = []
        while time.monotonic() < deadline and conversation["id"] not in str(landed):
            events = lake.read(BRONZE_EVENTS, columns=["payload"]) if lake.exists(BRONZE_EVENTS) else None
            landed = events.column("payload").to_pylist() if events is not None else []
            time.sleep(2)
        assert conversation["id"] in str(landed), "the outbox sensor never drained the chat into bronze"

        # Dagster's own records live in the platform's PostgreSQL server, in a database of their own.
        socket_dir = next((tmp_path / "postgres").glob("**/postmaster.pid")).parent
        with psycopg.connect(f"postgresql://postgres:@/dagster?host={socket_dir}") as conn:
            runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        assert runs >= 1
    finally:
        assert stop(process) == 0
    assert not postgres_running(tmp_path), "the embedded PostgreSQL outlived the platform"
    deadline = time.monotonic() + 30
    while dagster_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert dagster_processes(tmp_path) == [], "Dagster processes outlived the platform"
