"""Start a server process on 127.0.0.1, wait for a URL to answer 200, stop it. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import time

import httpx

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_200(url: str, *, started: float, process: subprocess.Popen) -> float:
    """Seconds from `started` until `url` first answers 200."""
    deadline = started + START_TIMEOUT_S
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before answering")
            try:
                if client.get(url).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.005)
    raise TimeoutError(f"{url} did not answer within {START_TIMEOUT_S}s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    median, low, high = (statistics.median(values) * 1000, min(values) * 1000, max(values) * 1000)
    return f"median {median:7.1f} ms  min {low:7.1f}  max {high:7.1f}"
