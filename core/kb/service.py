"""Adding, deleting and searching a tenant's knowledge base across PostgreSQL (truth) and the vector index.

An upload is parsed, chunked and embedded before anything is written. Then the document rows are inserted in a
transaction, the vectors upserted, and the transaction committed; if the index or the commit fails, the vectors written
for those documents are removed and the rows roll back. Nothing half-written stays.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg import errors

from core.db import Database
from core.embeddings import AsyncEncoder
from core.kb import store
from core.kb.chunking import Chunk, chunk_text
from core.kb.parsing import ParsedDocument
from core.llm import cache as answer_cache
from core.schemas import UploadedDocument
from core.vectors import ChunkPoint, VectorHit, VectorStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Prepared:
    document_id: str
    parsed: ParsedDocument
    digest: str
    chunks: list[Chunk]
    ids: list[str]


def embedding_text(*, title: str, heading: str | None, text: str) -> str:
    """What the encoder reads for a chunk: the document and section titles give a short passage its context."""
    return ". ".join(part for part in (title, heading, text) if part)


def _payload(prepared: _Prepared, chunk: Chunk, chunk_id: str, source_url: str | None, *, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "document_id": prepared.document_id,
        "chunk_id": chunk_id,
        "title": prepared.parsed.title,
        "heading": chunk.heading,
        "text": chunk.text,
        "source_url": source_url,
    }


class KnowledgeBase:
    def __init__(self, *, db: Database, vectors: VectorStore, encoder: AsyncEncoder) -> None:
        self.db = db
        self.vectors = vectors
        self.encoder = encoder

    async def add(
        self,
        *,
        tenant_id: str,
        documents: list[ParsedDocument],
        filename: str | None = None,
        source_url: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[UploadedDocument]:
        """Add documents all or nothing; content already present is reported with created=False and left alone."""
        try:
            return await self._add(tenant_id, documents, filename, source_url, metadata)
        except errors.UniqueViolation:
            # The same content was uploaded concurrently and the other upload won: now it is simply "already there".
            return await self._add(tenant_id, documents, filename, source_url, metadata)

    async def _add(self, tenant_id, documents, filename, source_url, metadata) -> list[UploadedDocument]:
        results: dict[int, UploadedDocument] = {}
        fresh: list[tuple[int, _Prepared]] = []
        seen: dict[str, int] = {}
        async with self.db.connection() as conn:
            for index, parsed in enumerate(documents):
                digest = store.content_hash(title=parsed.title, text=parsed.text)
                existing = await store.find_by_hash(conn, tenant_id=tenant_id, digest=digest)
                if existing is not None or digest in seen:
                    twin = existing or fresh[seen[digest]][1]
                    results[index] = UploadedDocument(
                        id=twin.id if existing else twin.document_id,
                        title=parsed.title,
                        chunks=existing.chunk_count if existing else len(twin.chunks),
                        created=False,
                    )
                    continue
                chunks = chunk_text(parsed.text)
                document_id = store.new_document_id()
                seen[digest] = len(fresh)
                prepared = _Prepared(
                    document_id, parsed, digest, chunks, store.chunk_ids(document_id=document_id, count=len(chunks))
                )
                fresh.append((index, prepared))
        if fresh:
            await self._write(
                tenant_id=tenant_id,
                prepared=[p for _, p in fresh],
                filename=filename,
                source_url=source_url,
                metadata=metadata,
            )
            for index, p in fresh:
                results[index] = UploadedDocument(
                    id=p.document_id, title=p.parsed.title, chunks=len(p.chunks), created=True
                )
        return [results[index] for index in range(len(documents))]

    async def _write(self, *, tenant_id: str, prepared: list[_Prepared], filename, source_url, metadata) -> None:
        texts = [
            embedding_text(title=p.parsed.title, heading=chunk.heading, text=chunk.text)
            for p in prepared
            for chunk in p.chunks
        ]
        # Each document also gets a title point: a question-like title ("How do I reset my password?") is the best
        # match for a paraphrase of it, and long chunks dilute it (StackFAQ P@1 0.860 without, see bench/stackfaq.py).
        titles = [p.parsed.title for p in prepared]
        vectors = iter(await self.encoder.encode_many(texts + titles))
        points = [
            ChunkPoint(
                id=chunk_id,
                dense=next(vectors),
                text=embedding_text(title=p.parsed.title, heading=chunk.heading, text=chunk.text),
                payload=_payload(p, chunk, chunk_id, source_url, kind="chunk"),
            )
            for p in prepared
            for chunk, chunk_id in zip(p.chunks, p.ids, strict=True)
        ]
        points += [
            ChunkPoint(
                id=store.title_point_id(document_id=p.document_id),
                dense=next(vectors),
                text=p.parsed.title,
                payload=_payload(p, p.chunks[0], p.ids[0], source_url, kind="title"),
            )
            for p in prepared
        ]
        try:
            async with self.db.transaction() as conn:
                for p in prepared:
                    await store.insert_document(
                        conn,
                        tenant_id=tenant_id,
                        document_id=p.document_id,
                        title=p.parsed.title,
                        text=p.parsed.text,
                        media_type=p.parsed.media_type,
                        digest=p.digest,
                        chunks=p.chunks,
                        ids=p.ids,
                        filename=filename,
                        source_url=source_url,
                        metadata={**(metadata or {}), **p.parsed.metadata},
                    )
                await answer_cache.invalidate(conn, tenant_id=tenant_id)
                await asyncio.to_thread(self.vectors.upsert, tenant_id=tenant_id, points=points)
        except BaseException:
            await self._forget_vectors(tenant_id=tenant_id, document_ids=[p.document_id for p in prepared])
            raise

    async def _forget_vectors(self, *, tenant_id: str, document_ids: list[str]) -> None:
        for document_id in document_ids:
            try:
                await asyncio.to_thread(self.vectors.delete_document, tenant_id=tenant_id, document_id=document_id)
            except Exception:
                log.exception("could not remove the vectors of failed document %s", document_id)

    async def delete(self, *, tenant_id: str, document_id: str) -> bool:
        """Remove a document, its chunks and their vectors; False if the tenant has no such document."""
        async with self.db.transaction() as conn:
            if not await store.delete_document(conn, tenant_id=tenant_id, document_id=document_id):
                return False
            await answer_cache.invalidate(conn, tenant_id=tenant_id)
            # Inside the transaction: if the index refuses, the rows stay and the caller can retry.
            await asyncio.to_thread(self.vectors.delete_document, tenant_id=tenant_id, document_id=document_id)
        return True

    async def search(
        self, *, tenant_id: str, query: str, limit: int, dense: np.ndarray | None = None
    ) -> list[VectorHit]:
        """Hybrid search for `query`; pass its embedding as `dense` when the caller already has it."""
        if dense is None:
            dense = await self.encoder.encode_one(query)
        if self.vectors.searches_under_the_gil:
            return self.vectors.search(tenant_id=tenant_id, dense=dense, text=query, limit=limit)
        return await asyncio.to_thread(self.vectors.search, tenant_id=tenant_id, dense=dense, text=query, limit=limit)
