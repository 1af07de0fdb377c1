"""Cold start of `parley serve` to the first 200 on /healthz, embedded PostgreSQL already initialised.

Anchor: a hello-world FastAPI app on uvicorn, started as a fresh process the same way, in the same run.
Goal (issue 2): under 3 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._data import server_env
from bench._harness import free_port, spawn, stop, summary, wait_for_200

RUNS = 5
GOAL_S = 3.0
PARLEY = str(Path(sys.executable).with_name("parley"))


def time_start(argv: list[str], env: dict[str, str], port: int) -> float:
    started = time.perf_counter()
    process = spawn(argv, env)
    try:
        return wait_for_200(f"http://127.0.0.1:{port}/healthz", started=started, process=process)
    finally:
        stop(process)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as data_dir:
        env = server_env(data_dir)
        # initdb and the migrations happen here, once, as after a first `make run`.
        subprocess.run([PARLEY, "migrate"], env={**os.environ, **env}, check=True, capture_output=True, timeout=120)
        parley, anchor = [], []
        for _ in range(RUNS):
            port = free_port()
            parley.append(time_start([PARLEY, "serve", "--port", str(port)], env, port))
            port = free_port()
            hello = [sys.executable, "-m", "uvicorn", "bench._hello:app", "--port", str(port), "--log-level", "warning"]
            anchor.append(time_start(hello, {}, port))
    ratio = statistics.median(parley) / statistics.median(anchor)
    verdict = "meets" if max(parley) < GOAL_S else "MISSES"
    print(f"cold start to first 200 on /healthz (embedded PostgreSQL initialised), {RUNS} runs each")
    print(f"  parley serve          {summary(parley)}")
    print(f"  anchor: hello uvicorn {summary(anchor)}")
    print(f"  ratio parley/anchor   {ratio:.2f}x   worst run {max(parley):.2f} s {verdict} the {GOAL_S:.0f} s goal")


if __name__ == "__main__":
    main()
