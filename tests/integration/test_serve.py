"""`parley serve --seed-demo` (what `make run` starts) on its own embedded PostgreSQL, end to end."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

PARLEY = str(Path(sys.executable).with_name("parley"))
START_TIMEOUT_S = 120


def start(
    data_dir: Path, port: int, *, extra_args: list[str] = (), env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, dict[str, str]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    # No demo knowledge base here (test_widget_browser.py seeds and uses one): this test is about tenants and keys.
    environment.update(
        PARLEY_DATA_DIR=str(data_dir), PARLEY_PORT=str(port), PARLEY_DEMO_DATA_DIR=str(data_dir / "no-data")
    )
    environment.update(env or {})
    process = subprocess.Popen(
        [PARLEY, "serve", "--seed-demo", *extra_args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner: dict[str, str] = {}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "pipelines" if "--pipelines" in extra_args else "knowledge"
        while time.monotonic() < deadline and last not in banner:
            line = process.stdout.readline()
            if not line:
                break
            match = re.match(r"^\s+([A-Za-z ]+?)\s+: (\S+)", line)
            if match:
                banner[match[1]] = match[2]
        assert last in banner, f"no banner; exit code {process.poll()}"
    except BaseException:
        stop(process)  # never leave a server (and its embedded PostgreSQL) behind
        raise
    # Keep reading the log so a full pipe never blocks the server.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return process, banner


def wait_ready(base: str) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base}/readyz", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server never became ready")


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def postgres_running(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "postmaster.pid").exists()


def test_make_run_path_serves_the_demo_tenant_and_rotates_its_keys(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process, banner = start(tmp_path, port)
    try:
        # A first run builds the sentence encoder under the data directory before it reports ready.
        ready = wait_ready(base)
        assert ready.json()["checks"]["postgres"]["ok"] and ready.json()["checks"]["encoder"]["ok"]
        assert [path.name for path in (tmp_path / "models").glob("*/model.onnx")], "no encoder built in the data dir"
        owner = {"Authorization": f"Bearer {banner['owner key']}"}
        tenant = httpx.get(f"{base}/v1/tenants/{banner['demo tenant']}", headers=owner, timeout=5)
        assert tenant.status_code == 200 and tenant.json()["name"] == "Demo"
        admin = {"Authorization": f"Bearer {banner['admin token']}"}
        assert httpx.get(f"{base}/v1/tenants", headers=admin, timeout=5).status_code == 200
        assert banner["API docs"] == f"{base}/docs"
        assert banner["widget key"].startswith("pk_") and banner["knowledge"] == "none"
    finally:
        assert stop(process) == 0
    assert not postgres_running(tmp_path), "the embedded PostgreSQL outlived the platform"

    # A second run keeps the tenant, and replaces the demo keys: the old ones stop working.
    process, second = start(tmp_path, port)
    try:
        wait_ready(base)
        assert second["demo tenant"] == banner["demo tenant"]
        old = httpx.get(
            f"{base}/v1/tenants/{banner['demo tenant']}", headers={"Authorization": f"Bearer {banner['owner key']}"}
        )
        new = httpx.get(
            f"{base}/v1/tenants/{second['demo tenant']}", headers={"Authorization": f"Bearer {second['owner key']}"}
        )
        assert (old.status_code, new.status_code) == (401, 200)
    finally:
        assert stop(process) == 0
