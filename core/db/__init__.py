"""PostgreSQL: the pool, ordered SQL migrations, and the embedded server used when no URL is configured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.db.database import Database
from core.db.embedded import EmbeddedPostgres
from core.db.migrations import migrate
from core.settings import Settings

__all__ = ["Database", "EmbeddedPostgres", "migrate", "open_database"]


@asynccontextmanager
async def open_database(settings: Settings, *, run_migrations: bool | None = None) -> AsyncIterator[Database]:
    """The configured server (or the embedded one, started under the data directory), migrated and pooled."""
    embedded = None
    url = settings.postgres_url
    if settings.uses_embedded_postgres:
        embedded = EmbeddedPostgres(settings.postgres_data_dir)
        url = await asyncio.to_thread(embedded.start)  # initdb/start block for up to a second
    try:
        if settings.auto_migrate if run_migrations is None else run_migrations:
            await migrate(url)
        db = await Database.open(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        try:
            yield db
        finally:
            await db.close()
    finally:
        if embedded is not None:
            embedded.stop()
