"""StackFAQ retrieval quality of `/v1/kb/search`: P@1 and nDCG@10 over 1,249 paraphrases (goal >= 0.95 / 0.975).

The 125 StackExchange threads are uploaded as the demo tenant's are (title = the question, text = the answers), and
every paraphrase is sent to `/v1/kb/search` through the app (in-process HTTP, real embedded PostgreSQL and vector
engine). A query is right when its own thread ranks first; hits are chunks, so they are collapsed to documents in rank
order before scoring.

Anchor, in the same run: the dense baseline from ../shared/data/README.md, cosine between the query and the thread's
question alone (the published 0.945 / 0.977).
"""

from __future__ import annotations

import math
import time

import numpy as np

from bench._kb import STACKFAQ, stackfaq_platform, stackfaq_queries

TOP_K_CHUNKS = 50


def precision_at_1_and_ndcg(rankings: list[list[int]], truths: list[int]) -> tuple[float, float]:
    p1 = float(np.mean([bool(r) and r[0] == t for r, t in zip(rankings, truths, strict=True)]))
    ndcg = float(
        np.mean(
            [
                next((1 / math.log2(i + 2) for i, doc in enumerate(r[:10]) if doc == t), 0.0)
                for r, t in zip(rankings, truths, strict=True)
            ]
        )
    )
    return p1, ndcg


def main() -> None:
    if not STACKFAQ.exists():
        print(f"stackfaq: skipped, {STACKFAQ} not found")
        return
    queries = stackfaq_queries()
    truths = [number for _, number in queries]
    rankings, latencies = [], []
    with stackfaq_platform() as platform:
        for text, _ in queries:
            started = time.perf_counter()
            hits = platform.search(text, TOP_K_CHUNKS)
            latencies.append((time.perf_counter() - started) * 1000)
            rankings.append(list(dict.fromkeys(platform.thread_of[hit["document_id"]] for hit in hits)))
        titles = [None] * len(platform.thread_of)
        for document_id, number in platform.thread_of.items():
            titles[number] = platform.client.get(f"/v1/kb/documents/{document_id}", headers=platform.auth).json()[
                "title"
            ]
        encoder = platform.encoder
    p1, ndcg = precision_at_1_and_ndcg(rankings, truths)
    # Anchor: query-to-question cosine, the dense baseline of the data's README.
    questions = encoder.encode(titles)
    query_vectors = encoder.encode([text for text, _ in queries])
    anchor_p1, anchor_ndcg = precision_at_1_and_ndcg(
        [list(np.argsort(-(questions @ q))) for q in query_vectors], truths
    )
    verdict = "met" if p1 >= 0.95 and ndcg >= 0.975 else "MISSED"
    print(f"StackFAQ retrieval, {len(queries)} paraphrased queries over {len(titles)} threads")
    print(f"  /v1/kb/search (hybrid)        P@1 {p1:.3f}  nDCG@10 {ndcg:.3f}   goal 0.950 / 0.975 {verdict}")
    print(f"  anchor: query-question cosine P@1 {anchor_p1:.3f}  nDCG@10 {anchor_ndcg:.3f}")
    print(f"  difference                    P@1 {p1 - anchor_p1:+.3f}  nDCG@10 {ndcg - anchor_ndcg:+.3f}")
    print(
        f"  search latency through the app: p50 {np.percentile(latencies, 50):.2f} ms  "
        f"p95 {np.percentile(latencies, 95):.2f} ms (one query at a time)"
    )


if __name__ == "__main__":
    main()
