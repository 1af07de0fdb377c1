"""The vector store: one interface, Qdrant's embedded engine by default, a Qdrant server or cluster by URL.

Each chunk is one point with two named vectors: `dense` (the sentence encoder, cosine) and `bm25` (Qdrant's BM25
sparse vector, IDF applied by the engine at query time). A search asks the engine for both rankings in one batched
call, filtered to one tenant, and fuses them here by weighted reciprocal rank (see `fuse`). Fusing in Python rather than
in the engine keeps both engines identical: qdrant-edge 0.9.0 applies RRF weights in reverse of Qdrant's documented
order. The tenant is a payload key indexed with `is_tenant`, as Qdrant recommends for
multitenancy. Scores carry the dense cosine too, because the answerer needs a calibrated relevance, not a rank.

Embedded engine facts (measured, see docs/architecture.md): one process may open a shard; a query holds the GIL for
about a millisecond; `optimize()` (the HNSW build) holds the GIL for seconds, so a serving process never calls it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DENSE = "dense"
SPARSE = "bm25"
# Weighted RRF, measured on StackFAQ (bench/stackfaq.py): paraphrased questions are best served by dense vectors (BM25
# at equal weight drops P@1 from 0.962 to 0.878), so BM25 counts a fifth, which keeps P@1 at 0.955; a query naming an
# identifier (a part number, an error code) wants the exact token, so there BM25 counts fully.
RRF_K = 10
LEXICAL_WEIGHT = 0.2
IDENTIFIER_LEXICAL_WEIGHT = 1.0
_IDENTIFIER = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{3,}\b")
PREFETCH = 50
UPSERT_BATCH = 256
COLLECTION = "parley_chunks"


@dataclass(frozen=True)
class ChunkPoint:
    """One point to index. `payload` holds what search returns: document_id, chunk_id, title, heading, text,
    source_url. Several points may stand for one chunk (a document's title point answers with its first chunk), so the
    chunk id lives in the payload, and search returns each chunk once."""

    id: str
    dense: np.ndarray
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class VectorHit:
    chunk_id: str
    score: float  # the fused rank score: orders hits, means nothing across queries
    dense_score: float  # cosine of query and chunk: comparable across queries, so thresholds use it
    payload: dict[str, Any]


class VectorStore(Protocol):
    # True when a search computes in this process holding the GIL (the embedded engine): a worker thread would free
    # nothing for the event loop and only add a hop. False when it waits on a server, which a thread overlaps.
    searches_under_the_gil: bool

    def upsert(self, *, tenant_id: str, points: Sequence[ChunkPoint]) -> None: ...

    def search(self, *, tenant_id: str, dense: np.ndarray, text: str, limit: int) -> list[VectorHit]: ...

    def delete_document(self, *, tenant_id: str, document_id: str) -> None: ...

    def delete_tenant(self, *, tenant_id: str) -> None: ...

    def count(self, *, tenant_id: str) -> int: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def open_vector_store(settings, *, dim: int) -> VectorStore:
    """The configured store: a Qdrant server when PARLEY_QDRANT_URL is set, else the embedded engine under data_dir."""
    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantServerStore.connect(settings.qdrant_url, dim=dim, api_key=api_key)
    return EdgeVectorStore.open(settings.vectors_path, dim=dim)


def _bm25():
    from qdrant_edge import Bm25

    return Bm25()


def lexical_weight(text: str) -> float:
    return IDENTIFIER_LEXICAL_WEIGHT if _IDENTIFIER.search(text) else LEXICAL_WEIGHT


@dataclass(frozen=True)
class _Ranked:
    """One point of an engine's ranking: ids only, so a ranking of 50 points copies no texts or vectors."""

    point_id: str
    chunk_id: str
    cosine: float | None = None  # the dense ranking's score is the cosine; the lexical ranking's is not


@dataclass(frozen=True)
class _Fused:
    point_id: str  # the point that ranked (a chunk, or a document's title point)
    chunk_id: str
    score: float
    cosine: float | None


def fuse(text: str, dense: list[_Ranked], lexical: list[_Ranked], limit: int) -> list[_Fused]:
    """Weighted reciprocal-rank fusion of the two rankings; each chunk once (a title point folds into its chunk).

    Ties (common in RRF) are broken by the dense cosine where known, then the chunk id, so results are stable.
    """
    weight = lexical_weight(text)
    score: dict[str, float] = {}
    ranked: dict[str, _Ranked] = {}
    for ranking, w in ((dense, 1.0), (lexical, weight)):
        for rank, point in enumerate(ranking, start=1):
            score[point.point_id] = score.get(point.point_id, 0.0) + w / (RRF_K + rank)
            if point.cosine is not None or point.point_id not in ranked:
                ranked[point.point_id] = point
    order = sorted(score, key=lambda pid: (-score[pid], -(ranked[pid].cosine or -1.0), ranked[pid].chunk_id))
    best: dict[str, _Fused] = {}
    for pid in order:
        point = ranked[pid]
        if point.chunk_id not in best:
            best[point.chunk_id] = _Fused(pid, point.chunk_id, score[pid], point.cosine)
            if len(best) == limit:
                break
    return list(best.values())


def _hybrid_hits(
    *, query: np.ndarray, text: str, by_dense: list, by_words: list, limit: int, fetch: Callable
) -> list[VectorHit]:
    """Fuse two engine rankings (points with id, score and the `chunk_id` payload key), then fetch the payloads of the
    fused hits alone: `fetch(point_ids, with_vectors)` returns records with id, payload and vector."""
    fused = fuse(
        text,
        [_Ranked(str(p.id), p.payload["chunk_id"], p.score) for p in by_dense],
        [_Ranked(str(p.id), p.payload["chunk_id"]) for p in by_words],
        limit,
    )
    if not fused:
        return []
    records = fetch([hit.point_id for hit in fused], any(hit.cosine is None for hit in fused))
    return _hits(query, fused, {str(r.id): (r.payload, (r.vector or {}).get(DENSE)) for r in records})


def _hits(query: np.ndarray, fused: list[_Fused], records: dict[str, tuple[dict, Any]]) -> list[VectorHit]:
    """The fused hits with their payloads; a hit found by its words alone gets its cosine from its vector."""
    return [
        VectorHit(
            chunk_id=hit.chunk_id,
            score=hit.score,
            dense_score=hit.cosine if hit.cosine is not None else _cosine(query, records[hit.point_id][1]),
            payload=records[hit.point_id][0],
        )
        for hit in fused
        if hit.point_id in records  # a point deleted between the two calls is simply not returned
    ]


def _cosine(query: np.ndarray, vector: Any) -> float:
    return float(np.dot(query, np.asarray(vector, dtype=np.float32)))


class EdgeVectorStore:
    """Qdrant's in-process engine (`qdrant-edge-py`), one shard under the data directory."""

    searches_under_the_gil = True

    def __init__(self, shard: Any) -> None:
        import qdrant_edge as q

        self._q = q
        self._shard = shard
        self._bm25 = _bm25()

    @classmethod
    def open(cls, path: Path, *, dim: int) -> EdgeVectorStore:
        import qdrant_edge as q

        config = q.EdgeConfig(
            vectors={DENSE: q.EdgeVectorParams(size=dim, distance=q.Distance.Cosine)},
            sparse_vectors={SPARSE: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
            # A query holds the GIL however many threads it fans out to; on 2 cores one thread costs 10% less CPU
            # per search and leaves the other core to the encoder (measured at 100k points, 10 tenants).
            max_search_threads=1,
        )
        if path.exists() and any(path.iterdir()):
            return cls(q.EdgeShard.load(str(path), config))
        path.mkdir(parents=True, exist_ok=True)
        shard = q.EdgeShard.create(str(path), config)
        shard.update(q.UpdateOperation.create_field_index("tenant", q.KeywordIndexParams(is_tenant=True)))
        shard.update(q.UpdateOperation.create_field_index("document_id", q.PayloadSchemaType.Keyword))
        return cls(shard)

    def _tenant(self, tenant_id: str, document_id: str | None = None):
        q = self._q
        conditions = [q.FieldCondition(key="tenant", match=q.MatchValue(tenant_id))]
        if document_id is not None:
            conditions.append(q.FieldCondition(key="document_id", match=q.MatchValue(document_id)))
        return q.Filter(must=conditions)

    def upsert(self, *, tenant_id: str, points: Sequence[ChunkPoint]) -> None:
        q = self._q
        for start in range(0, len(points), UPSERT_BATCH):
            batch = [
                q.Point(
                    uuid.UUID(p.id),
                    {DENSE: p.dense, SPARSE: self._bm25.embed_document(p.text)},
                    {"chunk_id": p.id, **p.payload, "tenant": tenant_id},
                )
                for p in points[start : start + UPSERT_BATCH]
            ]
            self._shard.update(q.UpdateOperation.upsert_points(batch))
        self._shard.flush()

    def search(self, *, tenant_id: str, dense: np.ndarray, text: str, limit: int) -> list[VectorHit]:
        q = self._q
        tenant = self._tenant(tenant_id)
        requests = [
            q.QueryRequest(
                limit=PREFETCH, query=q.Query.Nearest(vector, using=using), filter=tenant, with_payload=["chunk_id"]
            )
            for vector, using in ((dense.tolist(), DENSE), (self._bm25.embed_query(text), SPARSE))
        ]
        by_dense, by_words = self._shard.query_batch(q.QueryBatchRequest(requests))

        def fetch(point_ids: list[str], with_vectors: bool) -> list:
            ids = [uuid.UUID(point_id) for point_id in point_ids]
            return self._shard.retrieve(ids, with_payload=True, with_vector=[DENSE] if with_vectors else False)

        return _hybrid_hits(query=dense, text=text, by_dense=by_dense, by_words=by_words, limit=limit, fetch=fetch)

    def delete_document(self, *, tenant_id: str, document_id: str) -> None:
        self._shard.update(self._q.UpdateOperation.delete_points_by_filter(self._tenant(tenant_id, document_id)))
        self._shard.flush()

    def delete_tenant(self, *, tenant_id: str) -> None:
        self._shard.update(self._q.UpdateOperation.delete_points_by_filter(self._tenant(tenant_id)))
        self._shard.flush()

    def count(self, *, tenant_id: str) -> int:
        return self._shard.count(self._q.CountRequest(exact=True, filter=self._tenant(tenant_id)))

    def optimize(self) -> bool:
        """Build the HNSW index. Holds the GIL for seconds to minutes: maintenance only, never in a serving process."""
        return self._shard.optimize()

    def ping(self) -> None:
        self._shard.info()

    def close(self) -> None:
        self._shard.flush()
        self._shard.close()


class QdrantServerStore:
    """A Qdrant server or cluster through `qdrant-client` (its local mode stands in for the server in tests)."""

    searches_under_the_gil = False

    def __init__(self, client: Any, *, dim: int, collection: str = COLLECTION) -> None:
        from qdrant_client import models

        self._client = client
        self._m = models
        self._collection = collection
        self._dim = dim
        self._bm25 = _bm25()
        self._collection_checked = False

    def _ensure_collection(self) -> None:
        """Create the collection on first use, not at start-up: a server that is down must not stop Parley starting."""
        if self._collection_checked:
            return
        models, client, collection, dim = self._m, self._client, self._collection, self._dim
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            client.create_payload_index(
                collection, "tenant", field_schema=models.KeywordIndexParams(type="keyword", is_tenant=True)
            )
            client.create_payload_index(collection, "document_id", field_schema=models.PayloadSchemaType.KEYWORD)
        self._collection_checked = True

    @classmethod
    def connect(cls, url: str, *, dim: int, api_key: str | None = None) -> QdrantServerStore:
        from qdrant_client import QdrantClient

        # No version probe at connect: a server that is down must not stop start-up (readiness reports it).
        return cls(QdrantClient(url=url, api_key=api_key, timeout=10, check_compatibility=False), dim=dim)

    def _sparse(self, vector: Any):
        return self._m.SparseVector(indices=list(vector.indices), values=list(vector.values))

    def _tenant(self, tenant_id: str, document_id: str | None = None):
        m = self._m
        conditions = [m.FieldCondition(key="tenant", match=m.MatchValue(value=tenant_id))]
        if document_id is not None:
            conditions.append(m.FieldCondition(key="document_id", match=m.MatchValue(value=document_id)))
        return m.Filter(must=conditions)

    def upsert(self, *, tenant_id: str, points: Sequence[ChunkPoint]) -> None:
        self._ensure_collection()
        m = self._m
        for start in range(0, len(points), UPSERT_BATCH):
            batch = [
                m.PointStruct(
                    id=p.id,
                    vector={DENSE: p.dense.tolist(), SPARSE: self._sparse(self._bm25.embed_document(p.text))},
                    payload={"chunk_id": p.id, **p.payload, "tenant": tenant_id},
                )
                for p in points[start : start + UPSERT_BATCH]
            ]
            self._client.upsert(self._collection, points=batch, wait=True)

    def search(self, *, tenant_id: str, dense: np.ndarray, text: str, limit: int) -> list[VectorHit]:
        self._ensure_collection()
        m = self._m
        tenant = self._tenant(tenant_id)
        requests = [
            m.QueryRequest(query=vector, using=using, filter=tenant, limit=PREFETCH, with_payload=["chunk_id"])
            for vector, using in ((dense.tolist(), DENSE), (self._sparse(self._bm25.embed_query(text)), SPARSE))
        ]
        by_dense, by_words = self._client.query_batch_points(self._collection, requests=requests)

        def fetch(point_ids: list[str], with_vectors: bool) -> list:
            vectors = [DENSE] if with_vectors else False
            return self._client.retrieve(self._collection, ids=point_ids, with_payload=True, with_vectors=vectors)

        return _hybrid_hits(
            query=dense, text=text, by_dense=by_dense.points, by_words=by_words.points, limit=limit, fetch=fetch
        )

    def _delete(self, selector) -> None:
        self._ensure_collection()
        self._client.delete(self._collection, points_selector=self._m.FilterSelector(filter=selector), wait=True)

    def delete_document(self, *, tenant_id: str, document_id: str) -> None:
        self._delete(self._tenant(tenant_id, document_id))

    def delete_tenant(self, *, tenant_id: str) -> None:
        self._delete(self._tenant(tenant_id))

    def count(self, *, tenant_id: str) -> int:
        self._ensure_collection()
        return self._client.count(self._collection, count_filter=self._tenant(tenant_id), exact=True).count

    def ping(self) -> None:
        self._ensure_collection()

    def close(self) -> None:
        self._client.close()
