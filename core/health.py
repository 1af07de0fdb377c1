"""Readiness checks: does each store the platform is configured with answer right now?"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from core.db import Database
from core.settings import Settings

CHECK_TIMEOUT_S = 2.0


async def _timed(check: Callable[[], Awaitable[None]]) -> dict:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
        outcome = {"ok": True}
    except TimeoutError:
        outcome = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S:.0f}s"}
    except Exception as exc:
        # The class name and first line say what failed without leaking connection strings.
        outcome = {"ok": False, "error": type(exc).__name__ + (f": {str(exc).splitlines()[0]}" if str(exc) else "")}
    outcome["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return outcome


def _http_check(url: str) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as client:
            (await client.get(url)).raise_for_status()

    return check


def _writable_folder_check(folder: Path) -> Callable[[], Awaitable[None]]:
    def probe() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ready-"):
            pass

    async def check() -> None:
        await asyncio.to_thread(probe)

    return check


def _local_path(uri: str) -> Path | None:
    if "://" not in uri:
        return Path(uri)
    return Path(urlsplit(uri).path) if uri.startswith("file://") else None


def _encoder_check(encoder) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        if not encoder.ready:
            raise RuntimeError(f"sentence encoder {encoder.state()}")

    return check


async def readiness(*, settings: Settings, db: Database, vectors=None, encoder=None) -> dict[str, dict]:
    """Run every configured store's check concurrently; each result says ok, latency, and why it failed."""
    checks: dict[str, Callable[[], Awaitable[None]]] = {"postgres": db.ping}
    if vectors is not None:
        checks["vectors"] = lambda: asyncio.to_thread(vectors.ping)
    if encoder is not None:
        checks["encoder"] = _encoder_check(encoder)
    if settings.mlflow_location.startswith(("http://", "https://")):
        checks["mlflow"] = _http_check(settings.mlflow_location.rstrip("/") + "/health")
    lake_folder = _local_path(settings.lake_location)
    if lake_folder is not None:
        checks["lake"] = _writable_folder_check(lake_folder)
    results = await asyncio.gather(*(_timed(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))
