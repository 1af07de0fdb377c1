"""The chat tier's app factory. Stores open in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from core.db import open_database
from core.settings import Settings, load_settings
from serving.middleware import RequestContextMiddleware
from serving.problems import install_problem_handlers
from serving.routes import health, keys, tenants


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; with no settings given (uvicorn's factory mode) they come from the environment."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_database(settings) as db:
            app.state.db = db
            yield

    app = FastAPI(
        title="Parley",
        version=version("parley"),
        summary="Multi-tenant AI chatbot platform: tenants, keys, chat, analytics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_bytes)
    for module in (health, tenants, keys):
        app.include_router(module.router)
    return app
