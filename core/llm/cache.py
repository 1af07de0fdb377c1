"""The semantic answer cache: a tenant's earlier answer, served again to a question that asks the same thing.

A hit needs all of: the same tenant, the same knowledge-base version, the same routing policy, a standalone question
(the first of its conversation, or one that does not lean on earlier turns: "and how long does that take?" means
different things in different conversations), and cosine similarity to the earlier question of at least the threshold
calibrated by bench/cache_threshold.py. Only answers worth repeating are stored (confident knowledge-base answers and
model answers), a knowledge-base change empties the tenant's cache, and a thumbs-down evicts the answer it rated.

PostgreSQL holds the entries (`answer_cache`); each serving process searches an in-memory mirror of its tenants'
embeddings. The per-turn routing read (core/llm/routing.py) brings the tenant's `CacheState`: a newer epoch means
entries were removed (reload the mirror), a newer id means entries were added elsewhere (fetch just those). A mirror
that misses an entry only misses a hit; it can never serve a removed one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from core.db import Database
from core.schemas import Source

# Calibrated by bench/cache_threshold.py: above the highest cosine between two different StackFAQ questions (0.867),
# so a question never asked before is not served another's answer; a rephrasing of an answered one hits about a third
# of the time.
DEFAULT_THRESHOLD = 0.88
MAX_ENTRIES_PER_TENANT = 2000
MAX_MIRRORED_TENANTS = 256  # about 3 MB of embeddings each at the entry cap

CACHEABLE_TIERS = ("kb", "local", "llm")

# Words that point back at earlier turns: a question using them is not standalone.
_BACK_REFERENCES = re.compile(
    r"\b(it|its|it's|that|this|those|these|they|them|their|there|he|she|him|her|one|ones|same|else|instead|above|"
    r"previous|earlier|again|too|also|more|other|another)\b",
    re.IGNORECASE,
)
_CONTINUATIONS = re.compile(r"^\s*(and|but|or|so|then|what about|how about|why not|ok|okay|also)\b", re.IGNORECASE)
_MIN_STANDALONE_WORDS = 3


def is_standalone(question: str, *, earlier_questions: int) -> bool:
    """Whether the question can be answered without the conversation before it."""
    if earlier_questions == 0:
        return True
    if _CONTINUATIONS.search(question) or _BACK_REFERENCES.search(question):
        return False
    return len(question.split()) >= _MIN_STANDALONE_WORDS


def policy_hash(policy: BaseModel) -> str:
    """A stable fingerprint of a routing policy: answers cached under one policy are not served under another."""
    canonical = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CacheState:
    kb_version: int = 0
    epoch: int = 0
    newest_id: int = 0


@dataclass(frozen=True)
class CachedAnswer:
    entry_id: int
    question: str
    text: str
    sources: list[Source]
    tier: str  # the tier that first wrote the answer
    model: str | None
    similarity: float


@dataclass
class _Mirror:
    epoch: int
    watermark: int = 0  # every entry with a smaller or equal id is mirrored (or was removed)
    ids: list[int] = field(default_factory=list)
    keys: list[tuple[int, str]] = field(default_factory=list)  # (kb_version, policy_hash) per entry
    vectors: list[np.ndarray] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    _matrix: np.ndarray | None = None

    def add(self, row: dict) -> None:
        self.ids.append(row["id"])
        self.keys.append((row["kb_version"], row["policy_hash"]))
        self.vectors.append(np.frombuffer(row["embedding"], dtype=np.float32))
        self.rows.append({k: row[k] for k in ("question", "answer", "sources", "tier", "model")})
        self._matrix = None

    @property
    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            self._matrix = np.vstack(self.vectors)
        return self._matrix


_UPSERT_STATE = """
INSERT INTO answer_cache_state AS state (tenant_id, kb_version, epoch) VALUES (%(tenant_id)s, %(kb)s, 1)
ON CONFLICT (tenant_id) DO UPDATE SET kb_version = state.kb_version + %(kb)s, epoch = state.epoch + 1
"""


async def invalidate(conn: AsyncConnection, *, tenant_id: str) -> None:
    """The knowledge base changed: a new version, and no answer of the old one survives. Call it in the change's
    transaction, so no process can see the new knowledge base with the old answers."""
    await conn.execute(_UPSERT_STATE, {"tenant_id": tenant_id, "kb": 1})
    await conn.execute("DELETE FROM answer_cache WHERE tenant_id = %s", (tenant_id,))


async def evict_answer(conn: AsyncConnection, *, tenant_id: str, message_id: str) -> int:
    """A thumbs-down on an answer: remove every cached copy of that answer's text. Returns how many were removed."""
    cursor = await conn.execute(
        """DELETE FROM answer_cache
            WHERE tenant_id = %s
              AND answer = (SELECT text FROM messages WHERE tenant_id = %s AND id = %s AND role = 'assistant')
        RETURNING id""",
        (tenant_id, tenant_id, message_id),
    )
    removed = len(await cursor.fetchall())
    if removed:
        await conn.execute(_UPSERT_STATE, {"tenant_id": tenant_id, "kb": 0})
    return removed


_ROWS = "id, kb_version, policy_hash, question, embedding, answer, sources, tier, model"


class SemanticCache:
    def __init__(
        self,
        *,
        db: Database,
        threshold: float = DEFAULT_THRESHOLD,
        max_entries: int = MAX_ENTRIES_PER_TENANT,
        max_tenants: int = MAX_MIRRORED_TENANTS,
    ) -> None:
        self.db = db
        self.threshold = threshold
        self.max_entries = max_entries
        self.max_tenants = max_tenants
        self._mirrors: OrderedDict[str, _Mirror] = OrderedDict()
        self.lookups = 0
        self.hits = 0

    async def _mirror(self, tenant_id: str, state: CacheState) -> _Mirror:
        mirror = self._mirrors.get(tenant_id)
        if mirror is None or mirror.epoch != state.epoch:
            mirror = _Mirror(epoch=state.epoch)
        if state.newest_id > mirror.watermark:
            async with self.db.connection() as conn:
                cursor = await conn.execute(
                    f"SELECT {_ROWS} FROM answer_cache WHERE tenant_id = %s AND id > %s AND id <= %s ORDER BY id",
                    (tenant_id, mirror.watermark, state.newest_id),
                )
                known = set(mirror.ids)
                for row in await cursor.fetchall():
                    if row["id"] not in known:
                        mirror.add(row)
            mirror.watermark = state.newest_id
        self._mirrors[tenant_id] = mirror
        self._mirrors.move_to_end(tenant_id)
        while len(self._mirrors) > self.max_tenants:
            self._mirrors.popitem(last=False)
        return mirror

    async def lookup(
        self, *, tenant_id: str, state: CacheState, policy: str, vector: np.ndarray
    ) -> CachedAnswer | None:
        self.lookups += 1
        mirror = await self._mirror(tenant_id, state)
        if not mirror.ids:
            return None
        similarity = mirror.matrix @ vector.astype(np.float32)
        usable = np.array([key == (state.kb_version, policy) for key in mirror.keys])
        similarity[~usable] = -1.0
        best = int(np.argmax(similarity))
        if similarity[best] < self.threshold:
            return None
        self.hits += 1
        row = mirror.rows[best]
        return CachedAnswer(
            entry_id=mirror.ids[best],
            question=row["question"],
            text=row["answer"],
            sources=[Source(**source) for source in row["sources"]],
            tier=row["tier"],
            model=row["model"],
            similarity=round(float(similarity[best]), 4),
        )

    async def store(
        self,
        *,
        tenant_id: str,
        state: CacheState,
        policy: str,
        question: str,
        vector: np.ndarray,
        text: str,
        sources: list[Source],
        tier: str,
        model: str | None,
    ) -> None:
        """Keep an answer for later; nothing is stored if the knowledge base changed since the answer was made."""
        embedding = vector.astype(np.float32).tobytes()
        async with self.db.connection() as conn:
            cursor = await conn.execute(
                f"""WITH entry AS (
                        INSERT INTO answer_cache (tenant_id, kb_version, policy_hash, question, embedding, answer,
                                                  sources, tier, model)
                        SELECT %(tenant_id)s, %(kb)s, %(policy)s, %(question)s, %(embedding)s, %(answer)s,
                               %(sources)s, %(tier)s, %(model)s
                         WHERE coalesce((SELECT kb_version FROM answer_cache_state WHERE tenant_id = %(tenant_id)s), 0)
                               = %(kb)s
                        RETURNING {_ROWS}
                    )
                    SELECT entry.*, (SELECT max(id) FROM answer_cache WHERE tenant_id = %(tenant_id)s) AS previous
                      FROM entry""",
                {
                    "tenant_id": tenant_id,
                    "kb": state.kb_version,
                    "policy": policy,
                    "question": question,
                    "embedding": embedding,
                    "answer": text,
                    "sources": Jsonb([source.model_dump() for source in sources]),
                    "tier": tier,
                    "model": model,
                },
            )
            row = await cursor.fetchone()
            mirror = self._mirrors.get(tenant_id)
            if row is None or mirror is None or mirror.epoch != state.epoch:
                return
            # Mirror our own entry now when nothing unseen came before it; otherwise the next sync fetches both.
            if (row["previous"] or 0) <= mirror.watermark:
                mirror.add(row)
                mirror.watermark = row["id"]
            if len(mirror.ids) > self.max_entries:
                await self._trim(conn, tenant_id=tenant_id)

    async def _trim(self, conn: AsyncConnection, *, tenant_id: str) -> None:
        """Drop the oldest entries beyond the cap; the epoch tells every process to reload."""
        await conn.execute(
            """DELETE FROM answer_cache WHERE tenant_id = %(tenant_id)s AND id <= (
                   SELECT id FROM answer_cache WHERE tenant_id = %(tenant_id)s ORDER BY id DESC
                   OFFSET %(keep)s LIMIT 1)""",
            {"tenant_id": tenant_id, "keep": self.max_entries},
        )
        await conn.execute(_UPSERT_STATE, {"tenant_id": tenant_id, "kb": 0})
        self._mirrors.pop(tenant_id, None)

    def stats(self) -> dict[str, float]:
        return {
            "lookups": self.lookups,
            "hits": self.hits,
            "hit_rate": round(self.hits / self.lookups, 4) if self.lookups else 0.0,
            "tenants_mirrored": len(self._mirrors),
        }
