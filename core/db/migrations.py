"""Ordered plain-SQL migrations, each applied once, in its own transaction.

Safe to run twice (applied versions are skipped) and from two processes at once (a session advisory lock serialises
runners). An applied file whose text later changed stops the run: edit the schema with a new file instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection
from psycopg.rows import dict_row

# Any fixed 64-bit number; it only has to be the same for every Parley process.
_LOCK_KEY = 0x7061726C6579  # "parley"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    found = []
    for entry in resources.files("core.db").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(version=match[1], name=match[2], sql=entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


async def migrate(url: str) -> list[str]:
    """Apply pending migrations; return the versions this call applied (empty when the schema was current)."""
    applied_now: list[str] = []
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            cursor = await conn.execute("SELECT version, checksum FROM schema_migrations")
            done = {row["version"]: row["checksum"] for row in await cursor.fetchall()}
            for migration in available():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version}_{migration.name}.sql changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
