"""Real texts, their cached MiniLM embeddings, and knowledge bases larger than the real texts, for the benchmarks.

Knowledge-base chunks (about 30k unique), all from ../shared/data:
  banking77 train.csv and CLINC150 train+val utterances (titled with their intent), StackFAQ threads (question as title,
  answers split by core.kb.chunking), DialogSum dev dialogues (titled with their topic, split the same way).
Queries, held out from the knowledge base: banking77 test.csv, StackFAQ rephrasings, CLINC150 out-of-scope queries.

Encoding ~33k texts with MiniLM on 2 cores takes minutes, so the matrices are cached under var/bench-cache/
(gitignored), keyed by a hash of the model and of every input text; a changed input makes a new cache file.

Collections larger than the real corpus are SYNTHETIC beyond the real part: every real chunk appears once with its
real embedding, and each further point is a real embedding plus Gaussian noise (sigma NOISE_SIGMA per dimension, then
renormalised), carrying its source chunk's text and payload. Each point is distinct and the vectors keep the real
distribution's shape, but texts repeat (BM25 sees each real text about N / 30k times). Only chunk points are written:
the knowledge base also adds one title point per document, which these collections leave out (N points = N chunks).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
CACHE = ROOT / "var" / "bench-cache"
MODELS = CACHE / "models"  # the built encoder, shared by every benchmark


def built_models() -> str:
    """The models folder with the encoder built, for PARLEY_MODELS_DIR: a server that had to build it first would
    spend its first ~11 s of CPU on that, inside whatever is being measured."""
    from core.embeddings import ensure_model

    ensure_model(MODELS)
    return str(MODELS)


BENCH_ADMIN_TOKEN = "bench-admin-token-" + "x" * 16


def server_env(data_dir: str, **settings: object) -> dict[str, str]:
    """Environment for a benchmarked `parley`: its own data dir, the built encoder, an admin token, and `settings`
    (e.g. log_level="warning" becomes PARLEY_LOG_LEVEL=warning)."""
    return {
        "PARLEY_DATA_DIR": data_dir,
        "PARLEY_MODELS_DIR": built_models(),
        "PARLEY_ADMIN_TOKEN": BENCH_ADMIN_TOKEN,
        **{f"PARLEY_{name.upper()}": str(value) for name, value in settings.items()},
    }


DIM = 384
# Noise per dimension for synthetic points: a copy keeps cosine ~0.90 to its source (1 / sqrt(1 + 384 sigma^2)),
# about as far as a real chunk's nearest real neighbour, so copies do not collapse into tight clusters.
NOISE_SIGMA = 0.025
WRITE_BATCH = 20_000


@dataclass(frozen=True)
class KbChunk:
    document_id: str
    title: str
    text: str

    @property
    def embedding_text(self) -> str:
        from core.kb.service import embedding_text

        return embedding_text(title=self.title, heading=None, text=self.text)


@dataclass(frozen=True)
class Query:
    text: str
    source: str


def _label(intent: str) -> str:
    return intent.replace("_", " ").capitalize()


def _chunked(document_id: str, title: str, text: str) -> list[KbChunk]:
    from core.kb.chunking import chunk_text

    return [KbChunk(document_id, title, chunk.text) for chunk in chunk_text(text)]


@functools.cache
def kb_chunks() -> tuple[KbChunk, ...]:
    """Every knowledge-base chunk, deduplicated by the text the encoder reads, in a fixed order."""
    from core.kb.demo import stackfaq_documents

    chunks: list[KbChunk] = []
    with open(DATA / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        for n, row in enumerate(csv.DictReader(handle)):
            chunks.append(KbChunk(f"banking77-{n}", _label(row["category"]), row["text"].strip()))
    clinc = json.loads((DATA / "clinc150" / "data_full_train_val.json").read_text(encoding="utf-8"))
    for split in ("train", "val"):
        for n, (text, intent) in enumerate(clinc[split]):
            chunks.append(KbChunk(f"clinc-{split}-{n}", _label(intent), text.strip()))
    for n, document in enumerate(stackfaq_documents(DATA / "stackfaq" / "stackExchange-FAQ.json")):
        chunks.extend(_chunked(f"stackfaq-{n}", document.title, document.text))
    with open(DATA / "dialogsum" / "dialogsum.dev.jsonl", encoding="utf-8") as handle:
        for n, line in enumerate(handle):
            row = json.loads(line)
            chunks.extend(_chunked(f"dialogsum-{n}", row["topic"].strip().capitalize(), row["dialogue"]))
    seen: set[str] = set()
    unique = []
    for chunk in chunks:
        if chunk.text and chunk.embedding_text not in seen:
            seen.add(chunk.embedding_text)
            unique.append(chunk)
    return tuple(unique)


@functools.cache
def queries() -> tuple[Query, ...]:
    """User-like questions, none of which is a knowledge-base text; deduplicated, in a fixed order."""
    found: list[Query] = []
    with open(DATA / "banking77" / "test.csv", newline="", encoding="utf-8") as handle:
        found += [Query(row["text"].strip(), "banking77-test") for row in csv.DictReader(handle)]
    threads = json.loads((DATA / "stackfaq" / "stackExchange-FAQ.json").read_text(encoding="utf-8"))["root"]["qapair"]
    for thread in threads:
        rephrasings = thread["rephr"] if isinstance(thread["rephr"], list) else [thread["rephr"]]
        found += [Query(" ".join(text.split()), "stackfaq-rephr") for text in rephrasings if text]
    clinc = json.loads((DATA / "clinc150" / "data_full_train_val.json").read_text(encoding="utf-8"))
    found += [Query(text.strip(), "clinc-oos") for split in ("oos_train", "oos_val") for text, _ in clinc[split]]
    in_kb = {chunk.text for chunk in kb_chunks()}
    seen: set[str] = set()
    unique = []
    for query in found:
        if sum(c.isalpha() for c in query.text) >= 3 and query.text not in seen and query.text not in in_kb:
            seen.add(query.text)
            unique.append(query)
    return tuple(unique)


def sample_queries(count: int, *, sources: Sequence[str], seed: int) -> list[Query]:
    """`count` queries drawn evenly from `sources`, shuffled with `seed`."""
    rng = np.random.default_rng(seed)
    by_source = {source: [q for q in queries() if q.source == source] for source in sources}
    picked: list[Query] = []
    for n, source in enumerate(sources):
        share = count // len(sources) + (1 if n < count % len(sources) else 0)
        pool = by_source[source]
        picked += [pool[i] for i in rng.choice(len(pool), size=min(share, len(pool)), replace=False)]
    return [picked[i] for i in rng.permutation(len(picked))]


def embed(texts: Sequence[str], *, label: str) -> np.ndarray:
    """MiniLM embeddings of `texts` (normalised float32, one row each); cached, keyed by the texts."""
    from core.embeddings import OnnxEncoder, encode_sorted, model_dir

    digest = hashlib.sha256(model_dir(MODELS).name.encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\x00")
    path = CACHE / f"{label}-{len(texts)}-{digest.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    cached_in = path.relative_to(ROOT)
    print(f"  embedding {len(texts)} {label} texts with the encoder (once; cached in {cached_in}) ...", flush=True)
    started = time.perf_counter()
    vectors = encode_sorted(OnnxEncoder.load(MODELS), list(texts))
    print(f"  ... {time.perf_counter() - started:.0f} s ({len(texts) / (time.perf_counter() - started):.0f} texts/s)")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors


def kb_embeddings(chunks: Sequence[KbChunk]) -> np.ndarray:
    return embed([chunk.embedding_text for chunk in chunks], label="kb")


def query_embeddings(picked: Sequence[Query]) -> np.ndarray:
    """Rows of the cached matrix of every query (one cache for all samples)."""
    every = queries()
    matrix = embed([query.text for query in every], label="queries")
    row = {query: n for n, query in enumerate(every)}
    return matrix[[row[query] for query in picked]]


@dataclass(frozen=True)
class Written:
    points: int
    real: int
    synthetic: int
    copy_cosine: float  # mean cosine of a synthetic point to the real embedding it was made from
    seconds: float


def _rows(count: int, real: np.ndarray, seed: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first row, source chunk indexes, vectors) in batches: the real rows shuffled, then noisy copies."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    for start in range(0, count, WRITE_BATCH):
        rows = np.arange(start, min(count, start + WRITE_BATCH))
        sources = np.where(rows < len(real), order[np.minimum(rows, len(real) - 1)], 0)
        synthetic = rows >= len(real)
        sources[synthetic] = rng.integers(0, len(real), size=int(synthetic.sum()))
        vectors = real[sources].copy()
        if synthetic.any():
            noise = rng.standard_normal((int(synthetic.sum()), real.shape[1]), dtype=np.float32) * NOISE_SIGMA
            noisy = vectors[synthetic] + noise
            vectors[synthetic] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
        yield start, sources, vectors


def write_knowledge_base(
    store, *, count: int, tenant_ids: Sequence[str], chunks: Sequence[KbChunk], vectors: np.ndarray, seed: int = 7
) -> Written:
    """Upsert `count` chunk points spread evenly over `tenant_ids` (row i goes to tenant i mod len) into an
    EdgeVectorStore, exactly as the knowledge base writes them: one ChunkPoint per chunk with its payload."""
    from core.vectors import ChunkPoint

    started = time.perf_counter()
    cosines: list[float] = []
    for start, sources, batch in _rows(count, vectors, seed):
        per_tenant: list[list[ChunkPoint]] = [[] for _ in tenant_ids]
        for offset, (source, vector) in enumerate(zip(sources, batch, strict=True)):
            row = start + offset
            chunk = chunks[source]
            per_tenant[row % len(tenant_ids)].append(
                ChunkPoint(
                    id=str(uuid.UUID(int=(seed << 64) | row)),
                    dense=vector,
                    text=chunk.embedding_text,
                    payload={
                        "document_id": chunk.document_id,
                        "title": chunk.title,
                        "heading": None,
                        "text": chunk.text,
                        "source_url": None,
                    },
                )
            )
        for tenant_id, points in zip(tenant_ids, per_tenant, strict=True):
            if points:
                store.upsert(tenant_id=tenant_id, points=points)
        synthetic = start + np.arange(len(batch)) >= len(vectors)
        if synthetic.any():
            cosines += list(np.einsum("ij,ij->i", batch[synthetic], vectors[sources[synthetic]]))
    real = min(count, len(vectors))
    return Written(
        points=count,
        real=real,
        synthetic=count - real,
        copy_cosine=float(np.mean(cosines)) if cosines else float("nan"),
        seconds=time.perf_counter() - started,
    )


def describe(written: Written, *, corpus: int) -> str:
    if not written.synthetic:
        return f"{written.points:,} points, all real MiniLM embeddings of distinct chunks (of {corpus:,} real chunks)"
    return (
        f"{written.points:,} points: {written.real:,} real MiniLM embeddings + {written.synthetic:,} SYNTHETIC "
        f"(a real embedding + Gaussian noise sigma {NOISE_SIGMA}/dim, renormalised; mean cosine to its source "
        f"{written.copy_cosine:.3f}; texts and payloads repeat the source chunk's)"
    )


def machine_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"machine: {os.cpu_count()} cores, load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min)"


def cpu_ticks() -> tuple[int, int]:
    """(stolen, total) CPU ticks since boot, all cores (/proc/stat; zeros where there is none). Stolen ticks are time
    the hypervisor gave this VM's cores to someone else: on a shared VM one of the things that move a latency's tail."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time stolen between two cpu_ticks() readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def code_line() -> str:
    """The commit measured, and whether the code under it had uncommitted changes (others may be editing)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "core", "serving", "cli")
    return f"code: commit {commit}" + (
        ", with uncommitted changes in core/serving/cli" if dirty else ", core/serving/cli clean"
    )
