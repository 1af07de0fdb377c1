"""Cost and answer accuracy of routing: always-expensive, always-cheap and the router's `cost` strategy, on Banking77.

Issue goal: report cost per 1,000 conversations and answer accuracy for the three; the router's `cost` strategy should
cost at most 0.5x always-expensive with accuracy within 2 points of it.

REAL (Parley as it runs, in process through its HTTP API, with the real embedded PostgreSQL and vector engine in a temp
folder): tenants, knowledge-base upload, retrieval (hybrid dense + BM25), the knowledge-base answerer, the semantic
cache, the policy and its strategy, the router, the OpenAI-protocol client, and metering (usage rows, GET /v1/usage).
SIMULATED: the two LLMs (bench/_vendors.py), each a real HTTP server in its own process on 127.0.0.1 that reads the
prompt Parley sends (numbered passages, question) and answers by a deterministic mechanism, not a dice roll:
  premium/large  priced like gpt-4o      ($2.50 in / $10.00 out per million tokens), catalog quality 0.9:
                 K-nearest-neighbour vote over ALL 9,999 distinct Banking77 train questions, Parley's MiniLM encoder;
                 cites the passage titled with the winning intent, declines if no passage it was shown has that title.
  budget/small   priced like gpt-4o-mini ($0.15 / $0.60), catalog quality 0.6:
                 picks the shown passage sharing the most content words with the question, and cites it.
  Token counts they report: prompt = characters of all messages / 4, completion = answer words * 1.3.

Knowledge base: one document per intent (77): title = the intent made readable ("card_arrival" -> "Card arrival"),
text = the KB_QUESTIONS train questions of that intent closest to the intent's centroid (MiniLM embeddings), one
sentence each. There are no answer texts in Banking77, so a document is "the article these questions lead to", and an
answer is right when it points at the right article: the intent of the reply's FIRST source document must be the test
question's intent. kb, cache and model answers all carry sources; an answer without one (a model that declined, the
kb's "not found") counts as wrong, and how often that happens is shown.

Replay: QUESTIONS Banking77 test questions (seeded sample, held out from the knowledge base: none equals a train
question), one new conversation each (POST /v1/conversations, then POST /v1/conversations/{id}/messages, JSON reply),
sent one at a time. The same questions in the same order for every run; each run is its own tenant (own KB copy,
cache, usage) with its own policy:
  always expensive  tiers [premium/large]                                  (the anchor)
  always cheap      tiers [budget/small]
  router, bar 0.7   tiers [cache, kb, budget/small, premium/large], strategy cost, quality_bar 0.7 (the issue's router)
  router, bar 0.5   the same with quality_bar 0.5, so the cheap model clears the bar (the trade-off)
Cost is what Parley metered (GET /v1/usage total_cost_usd), cross-checked against the sum of its rows and against what
the vendors billed (the tokens they reported times the catalog prices). Latency is one turn (the messages POST) as the
client sees it, in process, vendor round trip included. Takes about 1.5 minutes here (2 cores), plus about 2 minutes
once to embed the train questions if var/bench-cache/ lacks them (bench/cache_threshold.py uses the same cache).
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench import _vendors
from bench._data import (
    BENCH_ADMIN_TOKEN,
    DATA,
    MODELS,
    _label,
    built_models,
    code_line,
    embed,
    kb_chunks,
    machine_line,
    queries,
)
from bench._harness import percentile

QUESTIONS = 1000
SEED = 77
KB_QUESTIONS = 5  # train questions per knowledge-base document
PRICES = {  # USD per million tokens, input / output; quality is the catalog prior the `cost` strategy weighs
    "premium/large": {"input_per_mtok": 2.50, "output_per_mtok": 10.00, "quality": 0.9},  # like gpt-4o
    "budget/small": {"input_per_mtok": 0.15, "output_per_mtok": 0.60, "quality": 0.6},  # like gpt-4o-mini
}
ROUTER_TIERS = ["cache", "kb", "budget/small", "premium/large"]
RUNS = (
    ("always expensive", {"tiers": ["premium/large"]}),
    ("always cheap", {"tiers": ["budget/small"]}),
    ("router cost, bar 0.7", {"tiers": ROUTER_TIERS, "strategy": "cost", "quality_bar": 0.7}),
    ("router cost, bar 0.5", {"tiers": ROUTER_TIERS, "strategy": "cost", "quality_bar": 0.5}),
)
GOAL_COST_RATIO, GOAL_ACCURACY_POINTS = 0.5, 2.0


@dataclass(frozen=True)
class Question:
    text: str
    intent: str  # readable, as the document titles


@dataclass(frozen=True)
class Turn:
    intent: str  # the question's
    bucket: str  # kb, cache, or llm <provider/model>
    text: str
    right: bool
    sourced: bool
    handoff: bool
    ms: float
    server_ms: float


@dataclass
class Run:
    name: str
    policy: dict
    turns: list[Turn] = field(default_factory=list)
    metered_usd: float = 0.0  # GET /v1/usage total_cost_usd
    rows_usd: float = 0.0  # the sum of its rows
    billed_usd: float = 0.0  # what the vendors' reported tokens cost at catalog prices
    usage_calls: int = 0
    usage_cache_hits: int = 0
    usage_rows: list[dict] = field(default_factory=list)
    vendor_calls: dict[str, int] = field(default_factory=dict)
    declined: int = 0  # model calls answered without a citation

    @property
    def accuracy(self) -> float:
        return sum(t.right for t in self.turns) / len(self.turns)

    @property
    def per_1000(self) -> float:
        return self.metered_usd / len(self.turns) * 1000

    def share(self) -> Counter:
        return Counter(t.bucket for t in self.turns)


# --- data ----------------------------------------------------------------------------------------------------------


def train_questions() -> tuple[list[str], list[str], np.ndarray]:
    """Banking77 train questions (as bench._data reads them: deduplicated), their readable intents and embeddings
    (the same cache as bench/cache_threshold.py)."""
    train = [chunk for chunk in kb_chunks() if chunk.document_id.startswith("banking77-")]
    vectors = embed([chunk.text for chunk in train], label="banking77-train-questions")
    return [chunk.text for chunk in train], [chunk.title for chunk in train], vectors


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."


def kb_documents(texts: list[str], intents: list[str], vectors: np.ndarray, per_intent: int) -> list[dict]:
    """One document per intent: its `per_intent` most typical train questions (nearest its centroid)."""
    labels = np.array(intents)
    documents = []
    for intent in sorted(set(intents)):
        rows = np.flatnonzero(labels == intent)
        centroid = vectors[rows].mean(axis=0)
        closest = rows[np.argsort(-(vectors[rows] @ centroid), kind="stable")[:per_intent]]
        documents.append({"title": intent, "text": " ".join(_sentence(texts[row]) for row in closest)})
    return documents


def test_sample(count: int, seed: int) -> list[Question]:
    with open(DATA / "banking77" / "test.csv", newline="", encoding="utf-8") as handle:
        intent_of = {row["text"].strip(): _label(row["category"]) for row in csv.DictReader(handle)}
    pool = [query for query in queries() if query.source == "banking77-test"]
    picked = np.random.default_rng(seed).choice(len(pool), size=min(count, len(pool)), replace=False)
    return [Question(pool[i].text, intent_of[pool[i].text]) for i in picked]


def providers_yaml(premium: str, budget: str) -> str:
    def model(name: str) -> str:
        price = PRICES[name]
        return (
            f"{{input_per_mtok: {price['input_per_mtok']}, output_per_mtok: {price['output_per_mtok']}, "
            f"context_tokens: 128000, quality: {price['quality']}}}"
        )

    return (
        "providers:\n"
        f"  premium:\n    protocol: openai\n    base_url: {premium}\n    timeout_s: 10\n"
        f"    models:\n      large: {model('premium/large')}\n"
        f"  budget:\n    protocol: openai\n    base_url: {budget}\n    timeout_s: 10\n"
        f"    models:\n      small: {model('budget/small')}\n"
    )


# --- one run -------------------------------------------------------------------------------------------------------


def _ok(response, expected: int = 200) -> dict:
    if response.status_code != expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()


def _vendor_bill(before: dict[str, dict], after: dict[str, dict]) -> tuple[float, dict[str, int], int]:
    billed, calls, declined = 0.0, {}, 0
    for name, price in PRICES.items():
        delta = {key: after[name][key] - before[name][key] for key in after[name]}
        billed += (
            delta["prompt_tokens"] * price["input_per_mtok"] + delta["completion_tokens"] * price["output_per_mtok"]
        ) / 1e6
        calls[name], declined = int(delta["requests"]), declined + int(delta["declined"])
    return billed, calls, declined


def turn_of(question: Question, body: dict, *, intent_of: dict[str, str], ms: float) -> Turn:
    """A turn as scored: right when the reply's first source is an article of the question's intent."""
    reply = body["reply"]
    first = intent_of.get(reply["sources"][0]["document_id"]) if reply["sources"] else None
    bucket = f"llm {reply['model']}" if reply["tier"] == "llm" else reply["tier"]
    return Turn(
        question.intent,
        bucket,
        reply["text"],
        first == question.intent,
        first is not None,
        reply["handoff_offered"],
        ms,
        body["latency_ms"],
    )


def replay(client, run: Run, documents: list[dict], questions: Sequence[Question], vendors: dict) -> None:
    admin = {"Authorization": f"Bearer {BENCH_ADMIN_TOKEN}"}
    tenant = _ok(client.post("/v1/tenants", json={"name": f"Routing cost: {run.name}"}, headers=admin), 201)
    auth = {"Authorization": f"Bearer {tenant['api_key']}"}
    intent_of = {}
    for document in documents:
        intent_of[_ok(client.post("/v1/kb/documents", json=document, headers=auth), 201)["id"]] = document["title"]
    _ok(client.put(f"/v1/tenants/{tenant['id']}/policy", json=run.policy, headers=auth))
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    before = {name: vendor.stats() for name, vendor in vendors.items()}
    for question in questions:
        conversation = _ok(client.post("/v1/conversations", headers=auth), 201)
        started = time.perf_counter()
        response = client.post(
            f"/v1/conversations/{conversation['id']}/messages", json={"text": question.text}, headers=auth
        )
        ms = (time.perf_counter() - started) * 1000
        body = _ok(response)
        run.turns.append(turn_of(question, body, intent_of=intent_of, ms=ms))
    after = {name: vendor.stats() for name, vendor in vendors.items()}
    run.billed_usd, run.vendor_calls, run.declined = _vendor_bill(before, after)
    usage = _ok(client.get("/v1/usage", params={"from": since, "group_by": "model"}, headers=auth))
    run.metered_usd = usage["total_cost_usd"]
    run.usage_rows = usage["rows"]
    run.rows_usd = sum(row["cost_usd"] for row in usage["rows"])
    run.usage_calls = sum(row["calls"] for row in usage["rows"])
    run.usage_cache_hits = sum(row["cache_hits"] for row in usage["rows"])


# --- report --------------------------------------------------------------------------------------------------------


def _bucket_line(run: Run) -> str:
    share = run.share()
    parts = []
    for bucket, count in sorted(share.items(), key=lambda item: -item[1]):
        right = sum(t.right for t in run.turns if t.bucket == bucket)
        parts.append(f"{bucket} {count / len(run.turns):.1%} (accuracy {right / count:.3f})")
    return "; ".join(parts)


def cache_line(run: Run) -> str | None:
    """Where the cached answers came from: an answer is traced to the earlier answers (not from the cache) with the
    same text; several may match (model answers are a template per cited article), and a hit counts as "another
    intent's" only when every one of them answered a question of another intent."""
    hits = [turn for turn in run.turns if turn.bucket == "cache"]
    if not hits:
        return None
    origins: dict[str, set[str]] = {}
    for turn in run.turns:
        if turn.bucket != "cache":
            origins.setdefault(turn.text, set()).add(turn.intent)
    foreign = [turn for turn in hits if turn.intent not in origins.get(turn.text, set())]
    unsourced = sum(not turn.sourced for turn in hits)
    return (
        f"    cache hits: {len(hits)}, right {sum(t.right for t in hits)}; {len(foreign)} served an answer first given "
        f"to a question of another intent (right anyway: {sum(t.right for t in foreign)}); {unsourced} served an "
        f"answer with no source (a model's decline, replayed without calling a model)"
    )


def report_run(run: Run, anchor: Run | None) -> None:
    n = len(run.turns)
    ms = [t.ms for t in run.turns]
    server = [t.server_ms for t in run.turns]
    unsourced = sum(not t.sourced for t in run.turns)
    handoffs = sum(t.handoff for t in run.turns)
    hits = sum(t.bucket == "cache" for t in run.turns)
    tiers = ", ".join(run.policy["tiers"])
    extra = (
        f", {run.policy['strategy']} strategy, quality_bar {run.policy['quality_bar']}"
        if "strategy" in run.policy
        else ""
    )
    print(f"  {run.name:<22} tiers [{tiers}]{extra}")
    print(
        f"    accuracy {run.accuracy:.3f} ({sum(t.right for t in run.turns)}/{n})   cost per 1,000 conversations "
        f"${run.per_1000:.4f}   no source {unsourced / n:.1%}   handoff offered {handoffs / n:.1%}"
    )
    print(f"    answered by: {_bucket_line(run)}")
    print(
        f"    cache hit rate {hits / n:.1%} (usage rows: {run.usage_cache_hits}/{run.usage_calls})   "
        f"turn latency p50 {percentile(ms, 50):.1f} ms  p95 {percentile(ms, 95):.1f} ms  "
        f"(server latency_ms p50 {percentile(server, 50):.1f}  p95 {percentile(server, 95):.1f})"
    )
    if line := cache_line(run):
        print(line)
    calls = ", ".join(f"{name} {count}" for name, count in run.vendor_calls.items())
    same = abs(run.metered_usd - run.rows_usd) < 1e-6 and abs(run.metered_usd - run.billed_usd) < 1e-6
    print(
        f"    metering: /v1/usage total ${run.metered_usd:.6f}, sum of its {len(run.usage_rows)} rows "
        f"${run.rows_usd:.6f}, vendors billed ${run.billed_usd:.6f} -> {'agree' if same else 'DISAGREE'}; "
        f"usage rows {run.usage_calls} for {n} turns; vendor calls: {calls} ({run.declined} declined)"
    )
    if anchor is not None and anchor is not run:
        low, high = accuracy_interval(anchor, run)
        print(
            f"    vs always expensive: cost {run.metered_usd / anchor.metered_usd:.3f}x, "
            f"accuracy {100 * (run.accuracy - anchor.accuracy):+.1f} points (95% interval {low:+.1f} to {high:+.1f}, "
            f"paired over the same questions)"
        )


def accuracy_interval(anchor: Run, run: Run) -> tuple[float, float]:
    """A normal-approximation 95% interval, in points, of the accuracy difference, paired question by question."""
    differences = np.array([r.right - a.right for a, r in zip(anchor.turns, run.turns, strict=True)], dtype=float)
    mean, half = differences.mean(), 1.96 * differences.std(ddof=1) / np.sqrt(len(differences))
    return 100 * (mean - half), 100 * (mean + half)


def verdict(anchor: Run, router: Run) -> None:
    ratio = router.metered_usd / anchor.metered_usd
    points = 100 * (router.accuracy - anchor.accuracy)
    cost_ok, accuracy_ok = ratio <= GOAL_COST_RATIO, points >= -GOAL_ACCURACY_POINTS
    passed = cost_ok and accuracy_ok
    print(
        f"goal: the router's cost strategy (bar 0.7) at most {GOAL_COST_RATIO}x always-expensive's cost with accuracy "
        f"within {GOAL_ACCURACY_POINTS:.0f} points: {'PASS' if passed else 'FAIL'} "
        f"(cost {ratio:.3f}x {'met' if cost_ok else 'MISSED'}, accuracy {points:+.1f} points "
        f"{'met' if accuracy_ok else 'MISSED'})"
    )
    low, high = accuracy_interval(anchor, router)
    print(f"  accuracy difference, 95% interval (paired): {low:+.1f} to {high:+.1f} points")
    print("  where the router's answers came from, against always-expensive on the same questions:")
    for bucket, count in sorted(router.share().items(), key=lambda item: -item[1]):
        right = sum(t.right for t in router.turns if t.bucket == bucket)
        print(
            f"    {bucket:<20} {count:5d} questions  router right {right / count:.3f}  "
            f"always-expensive right {_premium_on(anchor, router, bucket):.3f}  "
            f"-> {100 * (right - _premium_on(anchor, router, bucket) * count) / len(router.turns):+.1f} points overall"
        )
    if accuracy_ok:
        return
    from core.llm.kb import DEFAULT_MIN_SCORE

    kb = sum(t.bucket == "kb" for t in router.turns)
    print(
        f"  why it fails: the walk stops at the free kb tier whenever the best passage's cosine reaches "
        f"{DEFAULT_MIN_SCORE} (calibrated to tell in-scope from out-of-scope questions, bench/answer_threshold.py). "
        f"Every Banking77 question is in scope, so the kb answered {kb / len(router.turns):.0%} of them, and its "
        f"answer is only as right as the top retrieved article; cache hits mostly replay kb answers. The cost "
        f"strategy and quality_bar only order the paid tiers and never weigh the kb against them, so no setting of "
        f"the bar changes this: bar 0.5 differs only on the few questions the kb declined."
    )


def _premium_on(anchor: Run, router: Run, bucket: str) -> float:
    """Accuracy of always-expensive on the questions that `router` answered from `bucket` (same order, same
    questions)."""
    pairs = [(a, r) for a, r in zip(anchor.turns, router.turns, strict=True) if r.bucket == bucket]
    return sum(a.right for a, _ in pairs) / max(1, len(pairs))


@contextmanager
def replay_platform(models: str, vectors: np.ndarray, intents: list[str]) -> Iterator[tuple]:
    """Parley in process on a temp data folder (embedded PostgreSQL, vector engine) with the two simulated vendors
    in their own processes: yields (TestClient, {route: vendor}, scratch folder)."""
    from fastapi.testclient import TestClient

    from core.embeddings import AsyncEncoder, OnnxEncoder
    from core.settings import load_settings
    from serving.app import create_app

    with tempfile.TemporaryDirectory(prefix="parley-bench-") as scratch:
        train_npy, labels_json = Path(scratch) / "train.npy", Path(scratch) / "labels.json"
        np.save(train_npy, vectors)
        labels_json.write_text(json.dumps(intents), encoding="utf-8")
        with (
            _vendors.running("premium", models, str(train_npy), str(labels_json)) as premium,
            _vendors.running("budget") as budget,
        ):
            providers = Path(scratch) / "providers.yaml"
            providers.write_text(providers_yaml(premium.base_url, budget.base_url), encoding="utf-8")
            settings = load_settings(
                _env_file=None,
                data_dir=Path(scratch) / "data",
                models_dir=MODELS,
                admin_token=BENCH_ADMIN_TOKEN,
                rate_limit_per_minute=10**6,
                providers_file=providers,
                log_level="warning",
            )
            encoder = AsyncEncoder.preloaded(OnnxEncoder.load(MODELS))
            with TestClient(create_app(settings, encoder=encoder)) as client:
                yield client, {"premium/large": premium, "budget/small": budget}, Path(scratch)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.routing_cost", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--questions", type=int, default=QUESTIONS, help=f"test questions replayed (default {QUESTIONS})"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--kb-questions",
        type=int,
        default=KB_QUESTIONS,
        help=f"train questions per knowledge-base document (default {KB_QUESTIONS})",
    )
    args = parser.parse_args(argv)
    if not (DATA / "banking77" / "train.csv").exists():
        print(f"routing cost: skipped, {DATA / 'banking77'} not found")
        return
    started = time.perf_counter()
    models = built_models()
    texts, intents, vectors = train_questions()
    documents = kb_documents(texts, intents, vectors, args.kb_questions)
    questions = test_sample(args.questions, args.seed)
    runs = [Run(name, policy) for name, policy in RUNS]
    with replay_platform(models, vectors, intents) as (client, vendors, _):
        for run in runs:
            replay(client, run, documents, questions, vendors)
    anchor = runs[0]
    print(
        f"routing cost on Banking77: {len(questions)} test questions (seed {args.seed}), one conversation each, "
        f"against a KB of {len(documents)} documents (one per intent, {args.kb_questions} train questions each)"
    )
    print(f"  {machine_line()}; {code_line()}")
    print(
        "  SIMULATED models (bench/_vendors.py, own processes on 127.0.0.1): premium/large $2.50/$10.00 per Mtok "
        "quality 0.9 (kNN over all train questions), budget/small $0.15/$0.60 quality 0.6 (word overlap over the "
        "passages shown); everything else is Parley's own code"
    )
    for run in runs:
        report_run(run, anchor)
    print(f"  anchor: always expensive, ${anchor.per_1000:.4f} per 1,000 conversations, accuracy {anchor.accuracy:.3f}")
    verdict(anchor, runs[2])
    print(f"  ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
