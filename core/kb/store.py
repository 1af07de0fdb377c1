"""Documents and chunks in PostgreSQL: the source of truth the vector index is built from."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core.kb.chunking import Chunk
from core.schemas import Document, DocumentChunk, DocumentSummary
from core.tenancy import new_id

_SUMMARY_COLUMNS = "id, title, media_type, filename, source_url, metadata, chunk_count, created_at"


def content_hash(*, title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\x00{text}".encode()).hexdigest()


def chunk_ids(*, document_id: str, count: int) -> list[str]:
    """Stable chunk ids (UUIDs, as Qdrant wants): the same document always maps to the same points."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"parley:{document_id}:{ordinal}")) for ordinal in range(count)]


def title_point_id(*, document_id: str) -> str:
    """The index point that carries a document's title; it answers with the document's first chunk."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"parley:{document_id}:title"))


async def find_by_hash(conn: AsyncConnection, *, tenant_id: str, digest: str) -> DocumentSummary | None:
    cursor = await conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM kb_documents WHERE tenant_id = %s AND content_hash = %s", (tenant_id, digest)
    )
    row = await cursor.fetchone()
    return DocumentSummary(**row) if row else None


async def insert_document(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    document_id: str,
    title: str,
    text: str,
    media_type: str,
    digest: str,
    chunks: list[Chunk],
    ids: list[str],
    filename: str | None = None,
    source_url: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO kb_documents (id, tenant_id, title, text, media_type, filename, source_url, metadata,
                                     content_hash, chunk_count)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            document_id,
            tenant_id,
            title,
            text,
            media_type,
            filename,
            source_url,
            Jsonb(metadata or {}),
            digest,
            len(chunks),
        ),
    )
    async with conn.cursor() as cursor:
        await cursor.executemany(
            """INSERT INTO kb_chunks (id, tenant_id, document_id, ordinal, heading, text)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            [
                (chunk_id, tenant_id, document_id, c.ordinal, c.heading, c.text)
                for chunk_id, c in zip(ids, chunks, strict=True)
            ],
        )


def new_document_id() -> str:
    return new_id("d")


async def list_documents(
    conn: AsyncConnection, *, tenant_id: str, limit: int = 100, offset: int = 0
) -> list[DocumentSummary]:
    cursor = await conn.execute(
        f"""SELECT {_SUMMARY_COLUMNS} FROM kb_documents WHERE tenant_id = %s
             ORDER BY created_at DESC, id LIMIT %s OFFSET %s""",
        (tenant_id, limit, offset),
    )
    return [DocumentSummary(**row) for row in await cursor.fetchall()]


async def get_document(conn: AsyncConnection, *, tenant_id: str, document_id: str) -> Document | None:
    cursor = await conn.execute(
        f"SELECT {_SUMMARY_COLUMNS}, text FROM kb_documents WHERE tenant_id = %s AND id = %s", (tenant_id, document_id)
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    cursor = await conn.execute(
        "SELECT id::text, ordinal, heading, text FROM kb_chunks WHERE document_id = %s ORDER BY ordinal", (document_id,)
    )
    return Document(**row, chunks=[DocumentChunk(**chunk) for chunk in await cursor.fetchall()])


async def delete_document(conn: AsyncConnection, *, tenant_id: str, document_id: str) -> bool:
    cursor = await conn.execute(
        "DELETE FROM kb_documents WHERE tenant_id = %s AND id = %s RETURNING id", (tenant_id, document_id)
    )
    return await cursor.fetchone() is not None
