"""The dashboards tier's app factory: tenant executives' figures from the metrics store, and the dashboard page.

Its own FastAPI app with its own connection pool, so dashboard traffic never queues behind chat turns; `parley serve`
runs it beside the chat tier in one server (cli/asgi.py). It shares the chat tier's HTTP conventions (API keys, roles,
RFC 9457 problem documents, the request-context middleware) by importing them from serving/.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from core import metrics
from core.analytics import Baseline
from core.db import open_database
from core.limits import RateLimiter
from core.llm.catalog import Catalog, load_catalog
from core.settings import Settings, load_settings
from serving.middleware import RequestContextMiddleware
from serving.problems import install_problem_handlers

log = logging.getLogger(__name__)


def most_expensive(catalog: Catalog) -> Baseline | None:
    """The catalog's priciest model (by its blended price per token): the tier the savings are measured against."""
    models = [
        (spec.blended_per_mtok, provider, name, spec)
        for provider, declared in catalog.providers.items()
        for name, spec in declared.models.items()
    ]
    if not models:
        return None
    _, provider, model, spec = max(models, key=lambda entry: entry[:3])
    return Baseline(f"{provider}/{model}", spec.input_per_mtok, spec.output_per_mtok)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; with no settings given (uvicorn's factory mode) they come from the environment."""
    from analytics_api.routes import dashboard, figures

    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_database(settings) as db:
            app.state.db = db
            async with db.connection() as conn:
                app.state.metrics_store = await metrics.store_kind(conn)
            app.state.rate_limiter = RateLimiter()
            app.state.baseline = most_expensive(load_catalog(settings.providers_file))
            yield

    app = FastAPI(
        title="Parley analytics",
        version=version("parley"),
        summary="Tenant insight dashboards: KPIs, time series, intents, unanswered questions, costs and savings.",
        lifespan=lifespan,
        docs_url="/v1/analytics/docs",
        openapi_url="/v1/analytics/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_bytes)
    app.include_router(figures.router)
    app.include_router(dashboard.router)
    return app
