"""The chat tier's app factory. Stores open and the encoder loads in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from core import metrics
from core.db import Database, open_database
from core.embeddings import DIM, AsyncEncoder, OnnxEncoder
from core.kb.service import KnowledgeBase
from core.limits import RateLimiter
from core.llm.base import Provider
from core.llm.cache import SemanticCache
from core.llm.catalog import build_providers, load_catalog
from core.llm.intent_routes import IntentRoutes
from core.llm.kb import KnowledgeBaseAnswerer, KnowledgeBaseProvider
from core.llm.local import INSTALL, LocalProvider, default_model_path
from core.llm.orchestrator import LOCAL, Orchestrator
from core.llm.router import Router
from core.registry import Registry
from core.settings import Settings, load_settings
from core.vectors import VectorStore, open_vector_store
from serving.cors import WidgetCorsMiddleware
from serving.middleware import RequestContextMiddleware
from serving.problems import install_problem_handlers
from serving.routes import conversations, health, kb, keys, models, openai_compat, policy, tenants, usage, widget
from serving.services.champions import Champions
from serving.services.chat import ChatService

log = logging.getLogger(__name__)
UPLOAD_PATHS = ("/v1/kb/documents",)


def _freeze_startup_objects() -> None:
    """Hide what start-up built (about 100k objects of imported libraries) from the cyclic collector: a full
    collection over them takes ~50 ms, a pause that every chat turn in flight waits out (bench/chat_load.py)."""
    gc.collect()
    gc.freeze()


def _given(**options: object) -> dict[str, object]:
    """The options that are set: an unset setting leaves the component's calibrated default."""
    return {name: value for name, value in options.items() if value is not None}


def _local_provider(settings: Settings) -> LocalProvider | None:
    """The `local` tier's model when one is configured or the `local` extra is installed; loaded at its first use."""
    path = settings.local_model or default_model_path()
    if path is None:
        return None
    if importlib.util.find_spec("llama_cpp") is None:
        raise RuntimeError(f"PARLEY_LOCAL_MODEL is {path}, but the `local` extra is not installed: {INSTALL}")
    # One thread: beside the app on a small server, llama.cpp's second thread busy-waits (bench/local_tier.py).
    return LocalProvider(name=LOCAL, model_path=path, n_threads=1)


async def _metrics_store_mode(db: Database) -> str:
    """Which metrics store is active, said once in the log and on /readyz: operators should know."""
    async with db.connection() as conn:
        mode = await metrics.store_kind(conn)
    detail = "hypertables, continuous aggregates" if mode == "timescaledb" else "plain tables, BRIN, rollups"
    log.info("metrics store: %s (%s)", mode, detail)
    return mode


def create_app(
    settings: Settings | None = None, *, encoder: AsyncEncoder | None = None, vectors: VectorStore | None = None
) -> FastAPI:
    """Build the app; with no settings given (uvicorn's factory mode) they come from the environment.

    `encoder` and `vectors` let a test share one loaded model, or stand a qdrant-client in for the server.
    """
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        providers: dict[str, Provider] = {}
        async with open_database(settings) as db:
            store = vectors or await asyncio.to_thread(open_vector_store, settings, dim=DIM)
            try:
                # Loads (and, the first time, builds) in a thread: /healthz answers meanwhile, /readyz says "loading".
                app.state.encoder = encoder or AsyncEncoder(lambda: OnnxEncoder.load(settings.models_location))
                app.state.encoder.start()
                app.state.db = db
                app.state.metrics_store = await _metrics_store_mode(db)
                app.state.vectors = store
                app.state.kb = KnowledgeBase(db=db, vectors=store, encoder=app.state.encoder)
                app.state.rate_limiter = RateLimiter()
                app.state.catalog = catalog = load_catalog(settings.providers_file)
                providers.update(build_providers(catalog))
                local = _local_provider(settings)
                if local is not None:
                    providers[local.name] = local
                app.state.router = Router(providers=providers, catalog=catalog)
                app.state.cache = SemanticCache(db=db, **_given(threshold=settings.cache_threshold))
                answerer = KnowledgeBaseAnswerer(min_score=settings.answer_min_score)
                orchestrator = Orchestrator(
                    encoder=app.state.encoder,
                    kb=app.state.kb,
                    kb_provider=KnowledgeBaseProvider(answerer),
                    router=app.state.router,
                    catalog=catalog,
                    cache=app.state.cache,
                    local_model=local.model_path.stem if local is not None else None,
                    intent_routes=IntentRoutes(db=db),
                )
                app.state.registry = Registry(settings.mlflow_location)
                app.state.champions = Champions(
                    app.state.registry,
                    cache_dir=settings.models_location / "registry-cache",
                    refresh_s=settings.champion_refresh_s,
                )
                app.state.chat = ChatService(db=db, orchestrator=orchestrator, champions=app.state.champions)
                _freeze_startup_objects()
                yield
            finally:
                for provider in providers.values():
                    await provider.aclose()
                if encoder is None:
                    app.state.encoder.close()
                if vectors is None:
                    await asyncio.to_thread(store.close)

    app = FastAPI(
        title="Parley",
        version=version("parley"),
        summary="Multi-tenant AI chatbot platform: tenants, keys, knowledge base, chat, analytics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(WidgetCorsMiddleware)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        path_limits={path: settings.max_upload_bytes for path in UPLOAD_PATHS},
    )
    for module in (health, tenants, keys, policy, usage, widget, kb, conversations, openai_compat, models):
        app.include_router(module.router)
    return app
