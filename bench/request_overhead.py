"""What authentication and a tenant lookup add to a request, on a real `parley serve` over loopback.

Measured: GET /v1/tenants/{id} with an owner key (key lookup by prefix, hash check, tenant read: two queries).
Anchor: GET /healthz on the same server in the same run (no auth, no database).
Both sequential over one keep-alive connection. Besides latency it reports the server process's CPU per request: on two
cores the load generator shares the CPU, so throughput would measure the client more than Parley.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench._data import server_env
from bench._harness import free_port, percentile, spawn, stop, wait_for_200

SEQUENTIAL = 1000
WARM_UP = 50
PARLEY = str(Path(sys.executable).with_name("parley"))


def sequential_ms(client: httpx.Client, url: str, headers: dict[str, str]) -> list[float]:
    for _ in range(WARM_UP):  # warm-up: pool connections, first-query plans
        client.get(url, headers=headers)
    latencies = []
    for _ in range(SEQUENTIAL):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return latencies


def cpu_seconds(server: psutil.Process) -> float:
    times = server.cpu_times()
    return times.user + times.system


def line(name: str, values: list[float]) -> str:
    p50, p95, p99 = (percentile(values, q) for q in (50, 95, 99))
    return f"  {name:<26} p50 {p50:6.2f} ms  p95 {p95:6.2f}  p99 {p99:6.2f}"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as data_dir:
        env = server_env(data_dir, log_level="warning")
        created = subprocess.run(
            [PARLEY, "tenants", "create", "Bench"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        tenant = json.loads(created.stdout)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = spawn([PARLEY, "serve", "--port", str(port)], env)
        try:
            wait_for_200(f"{base}/healthz", started=time.perf_counter(), process=process)
            auth = {"Authorization": f"Bearer {tenant['api_key']}"}
            tenant_url = f"{base}/v1/tenants/{tenant['id']}"
            server = psutil.Process(process.pid)
            with httpx.Client(timeout=10) as client:
                cpu_before = cpu_seconds(server)
                anchor = sequential_ms(client, f"{base}/healthz", {})
                cpu_between = cpu_seconds(server)
                measured = sequential_ms(client, tenant_url, auth)
                cpu_after = cpu_seconds(server)
            per_request = 1000 / (SEQUENTIAL + WARM_UP)
            anchor_cpu, measured_cpu = (cpu_between - cpu_before) * per_request, (cpu_after - cpu_between) * per_request
        finally:
            stop(process)
    print(f"per-request cost of key auth + tenant read, one uvicorn worker, {SEQUENTIAL} sequential requests each")
    print(line("anchor: GET /healthz", anchor))
    print(line("GET /v1/tenants/{id}", measured))
    print(
        f"  ratio p50 {percentile(measured, 50) / percentile(anchor, 50):.2f}x  p95 "
        f"{percentile(measured, 95) / percentile(anchor, 95):.2f}x;  added p95 "
        f"{percentile(measured, 95) - percentile(anchor, 95):.2f} ms"
    )
    print(
        "  server CPU per request (uvicorn process; PostgreSQL's own work not included): "
        f"/healthz {anchor_cpu:.2f} ms, "
        f"authenticated read {measured_cpu:.2f} ms ({measured_cpu / anchor_cpu:.2f}x)"
    )


if __name__ == "__main__":
    main()
