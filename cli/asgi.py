"""The ASGI app `parley serve` runs: the chat tier (serving/) and the dashboards tier (analytics_api/) side by side
on one port. Requests under /v1/analytics and /dashboard go to the dashboards tier, every other one to the chat tier;
each app keeps its own lifespan, connection pool and middleware, so either can also be served alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from core.db import EmbeddedPostgres
from core.settings import Settings, load_settings

ANALYTICS_PREFIXES = ("/v1/analytics", "/dashboard")


class Platform:
    def __init__(self, serving: FastAPI, analytics: FastAPI, *, embedded: EmbeddedPostgres | None = None) -> None:
        self.serving = serving
        self.analytics = analytics
        self.embedded = embedded  # stopped after both apps have shut down

    def app_for(self, path: str) -> FastAPI:
        for prefix in ANALYTICS_PREFIXES:
            if path == prefix or path.startswith(prefix + "/"):
                return self.analytics
        return self.serving

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        try:
            async with AsyncExitStack() as stack:
                for app in (self.serving, self.analytics):
                    await stack.enter_async_context(app.router.lifespan_context(app))
                yield
        finally:
            if self.embedded is not None:
                self.embedded.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.app_for(scope.get("path", ""))(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol, run over both apps' lifespans (a failing start-up is reported, not raised)."""
        await receive()  # lifespan.startup
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.lifespan())
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})


def create_platform(settings: Settings | None = None) -> Platform:
    """uvicorn's factory: both apps from one Settings (the environment's when none is given). On the embedded
    PostgreSQL the platform starts (or joins) the server once and both apps connect to it by URL: one handle per
    process, so the server stops when the platform does."""
    from analytics_api.app import create_app as create_analytics
    from serving.app import create_app as create_serving

    settings = settings or load_settings()
    embedded = None
    if settings.uses_embedded_postgres:
        embedded = EmbeddedPostgres(settings.postgres_data_dir)
        settings = settings.model_copy(update={"postgres_url": embedded.start()})
    return Platform(create_serving(settings), create_analytics(settings), embedded=embedded)
