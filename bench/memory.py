"""Memory: RSS of the serving process with the sentence encoder loaded (goal <= 1.2 GB), and after 300 chat turns.

Anchor, in the same run: a bare Python process that only loads the same encoder, so the difference is Parley's own.
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
from bench._harness import free_port, spawn, stop, wait_for_200

GOAL_MB = 1200
TURNS = 300
PARLEY = str(Path(sys.executable).with_name("parley"))
QUESTIONS = ["How do I get a refund?", "Where is my order?", "Can I pay by invoice?", "How do I reset my password?"]
ANCHOR = (
    "import psutil; from bench._data import MODELS; from core.embeddings import OnnxEncoder; "
    "e = OnnxEncoder.load(MODELS); e.encode(['warm up']); print(psutil.Process().memory_info().rss)"
)


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as data_dir:
        env = server_env(data_dir, log_level="warning", rate_limit_per_minute=100_000)
        full_env = {**os.environ, **env}
        tenant = json.loads(
            subprocess.run(
                [PARLEY, "tenants", "create", "Memory"],
                env=full_env,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = spawn([PARLEY, "serve", "--port", str(port)], env)
        try:
            wait_for_200(f"{base}/readyz", started=time.perf_counter(), process=process)
            ready = rss_mb(process.pid)
            auth = {"Authorization": f"Bearer {tenant['api_key']}"}
            with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
                client.post(
                    "/v1/kb/documents", json={"title": "Help", "text": " ".join(QUESTIONS) * 20}
                ).raise_for_status()
                conversation = client.post("/v1/conversations", json={}).json()["id"]
                for turn in range(TURNS):
                    client.post(
                        f"/v1/conversations/{conversation}/messages", json={"text": QUESTIONS[turn % len(QUESTIONS)]}
                    ).raise_for_status()
            after = rss_mb(process.pid)
        finally:
            stop(process)
    anchor = (
        int(
            subprocess.run([sys.executable, "-c", ANCHOR], capture_output=True, text=True, check=True, timeout=300)
            .stdout.strip()
            .splitlines()[-1]
        )
        / 2**20
    )
    peak = max(ready, after)
    verdict = "meets" if peak <= GOAL_MB else "MISSES"
    print("memory of the serving process (RSS)")
    print(f"  parley serve, encoder loaded      {ready:7.0f} MB")
    print(f"  after {TURNS} chat turns            {after:7.0f} MB   {verdict} the {GOAL_MB} MB goal")
    share = f"Parley adds {peak - anchor:+.0f} MB ({peak / anchor:.2f}x)"
    print(f"  anchor: the encoder alone         {anchor:7.0f} MB   {share}")


if __name__ == "__main__":
    main()
