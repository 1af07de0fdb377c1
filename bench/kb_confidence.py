"""How likely the knowledge-base answerer is to be right: a logistic fit of P(correct) on the best cosine and margin.

The kb answerer (core/llm/kb.py) answers whenever the best passage's dense cosine reaches DEFAULT_MIN_SCORE: that says
"in scope", not "right". On Banking77 (one article per intent, 77 close topics, the KB of bench/routing_cost.py) it is
right only about three times in four. This fits
    P(correct) = sigmoid(a + b * s1 + c * margin)
  s1      the best retrieved passage's dense cosine,
  margin  s1 minus the best dense cosine among retrieved passages of ANOTHER document (see quality_features),
exactly as core/llm/kb.py answer_quality computes them from the 5 hits chat retrieves (core/llm/kb.py RETRIEVE = 5,
POST /v1/kb/search top_k 5 by default: the same hybrid search, with `relevance` = the dense cosine).

REAL: Parley in process through its HTTP API (tenant, document upload, POST /v1/kb/search, the embedded PostgreSQL and
vector engine in a temp folder), and the answerer itself (KnowledgeBaseAnswerer, run on the hits the search returned).
The KB is bench/routing_cost.py's: one document per intent, its KB_QUESTIONS most typical train questions.

Label: right when the intent of the answer's FIRST source is the question's intent, as bench/routing_cost.py scores
it. The answerer's first source is not simply the top hit: it cites the documents of the sentences it quotes, in the
order of the passages (fused rank order, only passages within PASSAGE_MARGIN of the best cosine), so the first source
is the first such passage with a quoted sentence. The label therefore comes from running the answerer on the search's
hits; how often that differs from the top hit's document is printed. Only questions the kb answers (s1 >= min score)
are fitted and scored, since only those carry a quality.

Fit: Banking77 TRAIN questions not in the KB (seeded sample), Newton/IRLS on the raw features (so the constants paste
into code). Held out: bench/routing_cost.py's sample of Banking77 TEST questions (same count and seed).
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench._data import BENCH_ADMIN_TOKEN, DATA, MODELS, built_models, code_line, machine_line
from bench.routing_cost import KB_QUESTIONS, QUESTIONS, SEED, _ok, _sentence, kb_documents, test_sample, train_questions
from core.llm.kb import RETRIEVE

TRAIN_QUESTIONS = 2000
THRESHOLDS = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, *, steps: int = 300) -> np.ndarray:
    """Maximum-likelihood weights (intercept first) by Newton/IRLS on the raw features; stops once converged."""
    design = np.column_stack([np.ones(len(x)), x])
    weights = np.zeros(design.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(design @ weights)))
        gradient = design.T @ (y - p)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(design.shape[1])
        step = np.linalg.solve(hessian, gradient)
        weights += step
        if np.abs(step).max() < 1e-10:
            break
    return weights


def predict(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(weights[0] + x @ weights[1:])))


def run_questions(client, auth: dict, texts: Sequence[str], intents: Sequence[str], intent_of: dict[str, str]):
    """For each question: s1, margin, whether the kb answers, whether its first source is right, whether the top hit
    (fused order) is right."""
    from core.llm.kb import KnowledgeBaseAnswerer, quality_features
    from core.vectors import VectorHit

    answerer = KnowledgeBaseAnswerer()
    rows = []
    for text, intent in zip(texts, intents, strict=True):
        hits = _ok(client.post("/v1/kb/search", json={"query": text, "top_k": RETRIEVE}, headers=auth))["hits"]
        found = [
            VectorHit(
                hit["chunk_id"],
                hit["score"],
                hit["relevance"],
                {"document_id": hit["document_id"], "title": hit["title"], "text": hit["text"]},
            )
            for hit in hits
        ]
        s1, margin = quality_features(found)
        answer = answerer.answer(question=text, hits=found)
        first = intent_of.get(answer.sources[0].document_id) if answer.sources else None
        rows.append((s1, margin, answer.confident, first == intent, intent_of[hits[0]["document_id"]] == intent))
    return np.array(rows, dtype=float)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kb_confidence", description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=TRAIN_QUESTIONS, help="train questions fitted (default 2000)")
    parser.add_argument("--questions", type=int, default=QUESTIONS, help="held-out test questions (default 1000)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if not (DATA / "banking77" / "train.csv").exists():
        print(f"kb confidence: skipped, {DATA / 'banking77'} not found")
        return
    from fastapi.testclient import TestClient

    from core.embeddings import AsyncEncoder, OnnxEncoder
    from core.llm.kb import DEFAULT_MIN_SCORE
    from core.settings import load_settings
    from serving.app import create_app

    started = time.perf_counter()
    built_models()
    texts, intents, vectors = train_questions()
    documents = kb_documents(texts, intents, vectors, KB_QUESTIONS)
    text_of = {document["title"]: document["text"] for document in documents}
    # Train questions not in the KB: a KB document's text is its questions as sentences.
    outside = [i for i, text in enumerate(texts) if _sentence(text) not in text_of[intents[i]]]
    rng = np.random.default_rng(args.seed)
    picked = rng.choice(len(outside), size=min(args.train, len(outside)), replace=False)
    train_rows = [outside[i] for i in picked]
    questions = test_sample(args.questions, args.seed)
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as scratch:
        settings = load_settings(
            _env_file=None,
            data_dir=Path(scratch) / "data",
            models_dir=MODELS,
            admin_token=BENCH_ADMIN_TOKEN,
            rate_limit_per_minute=10**6,
            log_level="warning",
        )
        encoder = AsyncEncoder.preloaded(OnnxEncoder.load(MODELS))
        with TestClient(create_app(settings, encoder=encoder)) as client:
            admin = {"Authorization": f"Bearer {BENCH_ADMIN_TOKEN}"}
            tenant = _ok(client.post("/v1/tenants", json={"name": "KB confidence"}, headers=admin), 201)
            auth = {"Authorization": f"Bearer {tenant['api_key']}"}
            intent_of = {
                _ok(client.post("/v1/kb/documents", json=document, headers=auth), 201)["id"]: document["title"]
                for document in documents
            }
            train = run_questions(
                client, auth, [texts[i] for i in train_rows], [intents[i] for i in train_rows], intent_of
            )
            test = run_questions(client, auth, [q.text for q in questions], [q.intent for q in questions], intent_of)

    print(
        f"kb confidence on Banking77: KB of {len(documents)} documents (one per intent, {KB_QUESTIONS} train questions "
        f"each, bench/routing_cost.py); fit on {len(train)} train questions outside the KB (of {len(outside)}, seed "
        f"{args.seed}), held out {len(test)} test questions (routing_cost's sample, seed {args.seed}); top_k {RETRIEVE}"
    )
    print(f"  {machine_line()}; {code_line()}")
    for name, rows in (("train", train), ("test", test)):
        answered = rows[:, 2] == 1
        differs = np.mean(rows[answered, 3] != rows[answered, 4])
        print(
            f"  {name}: kb answers {answered.mean():.1%} (s1 >= {DEFAULT_MIN_SCORE}); right (first source) "
            f"{rows[answered, 3].mean():.3f}, top hit's document right {rows[answered, 4].mean():.3f}; the first "
            f"source is not the top hit's document on {differs:.1%}"
        )
    fit = train[train[:, 2] == 1]
    weights = fit_logistic(fit[:, :2], fit[:, 3])
    a, b, c = (float(w) for w in weights)
    held = test[test[:, 2] == 1]
    p, y = predict(weights, held[:, :2]), held[:, 3]
    base = fit[:, 3].mean()
    brier, brier_constant = float(np.mean((p - y) ** 2)), float(np.mean((base - y) ** 2))
    train_p = predict(weights, fit[:, :2])
    log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    print(
        f"  fit: a={a:.4f} b={b:.4f} c={c:.4f}; train mean predicted {train_p.mean():.3f} vs observed "
        f"{fit[:, 3].mean():.3f}; held-out log loss {log_loss:.4f}"
    )
    print(f"  held-out calibration ({len(held)} test questions the kb answers):")
    print(f"    {'predicted':<10} {'count':>6} {'mean P':>7} {'observed':>9}")
    for low, high in itertools.pairwise(BINS):
        inside = (p >= low) & ((p < high) if high < 1 else (p <= high))
        if inside.any():
            print(f"    {low:.1f}-{high:.1f}    {inside.sum():6d} {p[inside].mean():7.3f} {y[inside].mean():9.3f}")
        else:
            print(f"    {low:.1f}-{high:.1f}    {0:6d} {'-':>7} {'-':>9}")
    n = len(test)
    print(f"  thresholds on all {n} held-out test questions (the kb answers only when s1 >= {DEFAULT_MIN_SCORE}):")
    print(
        f"    anchor, current rule s1 >= {DEFAULT_MIN_SCORE}: answers {len(held) / n:.1%}, accuracy {y.mean():.3f} "
        f"({int(y.sum())}/{len(held)})"
    )
    for t in THRESHOLDS:
        keep = p >= t
        accuracy = f"{y[keep].mean():.3f} ({int(y[keep].sum())}/{keep.sum()})" if keep.any() else "-"
        print(f"    P >= {t:<4}  answers {keep.sum() / n:6.1%}  accuracy {accuracy}")
    z_check = a + b * held[0, 0] + c * held[0, 1]
    assert math.isclose(1 / (1 + math.exp(-z_check)), p[0], rel_tol=1e-9)
    print(f"  ({time.perf_counter() - started:.0f} s in all)")
    print(
        f"kb confidence: a={a:.4f}, b={b:.4f}, c={c:.4f} (fit on {len(fit)} train questions; held-out Brier score "
        f"{brier:.4f}, vs {brier_constant:.4f} for a constant)"
    )


if __name__ == "__main__":
    main()
