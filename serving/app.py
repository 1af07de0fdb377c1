"""The chat tier's app factory. Stores open and the encoder loads in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from core.db import open_database
from core.embeddings import DIM, AsyncEncoder, OnnxEncoder
from core.kb.service import KnowledgeBase
from core.limits import RateLimiter
from core.llm.catalog import load_catalog
from core.llm.kb import KnowledgeBaseAnswerer
from core.settings import Settings, load_settings
from core.vectors import VectorStore, open_vector_store
from serving.cors import WidgetCorsMiddleware
from serving.middleware import RequestContextMiddleware
from serving.problems import install_problem_handlers
from serving.routes import conversations, health, kb, keys, openai_compat, policy, tenants, usage, widget
from serving.services.chat import ChatService

UPLOAD_PATHS = ("/v1/kb/documents",)


def _freeze_startup_objects() -> None:
    """Hide what start-up built (about 100k objects of imported libraries) from the cyclic collector: a full
    collection over them takes ~50 ms, a pause that every chat turn in flight waits out (bench/chat_load.py)."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None, *, encoder: AsyncEncoder | None = None, vectors: VectorStore | None = None
) -> FastAPI:
    """Build the app; with no settings given (uvicorn's factory mode) they come from the environment.

    `encoder` and `vectors` let a test share one loaded model, or stand a qdrant-client in for the server.
    """
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_database(settings) as db:
            store = vectors or await asyncio.to_thread(open_vector_store, settings, dim=DIM)
            try:
                # Loads (and, the first time, builds) in a thread: /healthz answers meanwhile, /readyz says "loading".
                app.state.encoder = encoder or AsyncEncoder(lambda: OnnxEncoder.load(settings.models_location))
                app.state.encoder.start()
                app.state.db = db
                app.state.vectors = store
                app.state.kb = KnowledgeBase(db=db, vectors=store, encoder=app.state.encoder)
                answerer = KnowledgeBaseAnswerer(min_score=settings.answer_min_score)
                app.state.chat = ChatService(db=db, kb=app.state.kb, answerer=answerer)
                app.state.rate_limiter = RateLimiter()
                app.state.catalog = load_catalog(settings.providers_file)
                _freeze_startup_objects()
                yield
            finally:
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
    for module in (health, tenants, keys, policy, usage, widget, kb, conversations, openai_compat):
        app.include_router(module.router)
    return app
