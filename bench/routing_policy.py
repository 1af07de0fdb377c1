"""The learned routing policy (issue 7) on the Banking77 replay of bench/routing_cost.py: per-intent routes learnt
from a tenant's own answers and their thumbs, against always-expensive.

Issue goal: the learned policy's cost per 1,000 conversations at least 60% below always-expensive's (at most 0.4x)
with at least 95% of its accuracy.

REAL, as in bench/routing_cost.py (whose pieces this imports): the serving app in process through its HTTP API, the
embedded PostgreSQL and vector engine in a temp folder, the knowledge base of 77 documents (one per intent), retrieval,
the kb answerer, the semantic cache, the policy, the router, metering (GET /v1/usage). And here also: the tenant's
intent model (models/intent/train.py, frozen recipe, on every Banking77 train row; registered in the tenant's MLflow
registry as intent__<tenant>@champion and loaded by serving, which labels every customer message with it), the
feedback endpoint, and the lakehouse (dg.materialize of LAKE_ASSETS + CHECKS into Delta in a temp folder: outbox ->
bronze -> silver -> enrichments -> gold -> metrics, and routing/policy, which writes the routes the router reads).
SIMULATED: the two LLMs (bench/_vendors.py, their own processes on 127.0.0.1): premium/large priced like gpt-4o
(kNN vote over ALL Banking77 train questions), budget/small priced like gpt-4o-mini (word overlap over the passages).

1. Learning period (an explicit A/B period): the learning tenant's customers ask LEARN questions, drawn from Banking77
   train (never test), one conversation each. The tenant rotates its policy's tiers in rounds, [kb] -> [budget/small]
   -> [premium/large] (PUT /v1/tenants/{id}/policy), one question per intent per period, LEARN_PER_TIER rounds, so
   every tier answers about that many questions of every intent. The simulated customer rates every answer through
   POST /v1/messages/{id}/feedback: thumbs up when it is right by routing_cost's rule (the reply's first source is the
   question's intent's document), down otherwise. Questions that are texts of the knowledge base are left out (the kb
   would quote them back); an intent with fewer questions than its tiers need asks some of them again.
2. The tenant's policy becomes the router of the router issue (tiers [cache, kb, budget/small, premium/large],
   strategy cost, quality_bar 0.7), the lakehouse runs for real, and routing/policy learns the routes
   (models/routing/policy.py: the cheapest tier whose measured quality holds within route_tolerance 0.05, at least
   30 answers per tier, Wilson lower bound, 10% of conversations explore the plain policy).
3. Evaluation: routing_cost's QUESTIONS test questions (same sample and order), new conversations, no feedback, for
   three tenants in the same run: the learning tenant (learned routes), the same router with the same intent model but
   no learning period (what the routes add), and always-expensive (tiers [premium/large], the anchor, exactly as in
   routing_cost). Cost is what Parley metered (GET /v1/usage), cross-checked against what the vendors billed.

The intent model is trained once and cached in var/bench-cache/ (keyed by the training rows and the training code);
about 70 s on an idle machine when it is not. The whole run takes 8-12 minutes here (2 cores shared with other work:
8.2 and 11.6 minutes in two runs, of which the learning period's 7,392 conversations took 5 and 8).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np

from bench._data import BENCH_ADMIN_TOKEN, DATA, MODELS, _label, built_models, code_line, machine_line
from bench._lake import cache_key, cached_dir, publish
from bench.routing_cost import (
    KB_QUESTIONS,
    QUESTIONS,
    RUNS,
    SEED,
    Question,
    Run,
    Turn,
    _ok,
    _sentence,
    _vendor_bill,
    accuracy_interval,
    kb_documents,
    replay,
    replay_platform,
    report_run,
    test_sample,
    train_questions,
    turn_of,
)

LEARN_PER_TIER = 32  # answers per intent and tier in the learning period (the policy needs 30 per intent label)
LEARN_SECONDS = 900.0  # a safety bound: the learning period stops after the round that passes it (said if so)
LEARN_SEED = 7
LEARN_TIERS = ("kb", "budget/small", "premium/large")
ANCHOR_POLICY = dict(RUNS[0][1])  # always expensive
ROUTER_POLICY = dict(RUNS[2][1])  # the router issue's router: cost strategy, quality_bar 0.7
GOAL_COST_RATIO, GOAL_ACCURACY_RATIO = 0.4, 0.95
INTENT_SOURCES = (
    "models/intent/train.py",
    "models/intent/head.py",
    "models/intent/model.py",
    "models/intent/pyfunc.py",
    "models/intent/evaluate.py",
    "core/embeddings.py",
)


@dataclass(frozen=True)
class Tenant:
    id: str
    auth: dict[str, str]
    intent_of: dict[str, str]  # knowledge-base document id -> its intent (readable, as the question's)


@dataclass(frozen=True)
class Asked:
    """What the replay saw of one turn besides routing_cost's Turn."""

    message_id: str
    intent: str | None  # the champion intent model's label of the question
    out_of_scope: bool
    routed_by: str = "policy"  # from the turn's usage row: policy, intent or explore
    cost_usd: float = 0.0


@dataclass
class Learning:
    turns: list[Turn] = field(default_factory=list)
    asked: list[Asked] = field(default_factory=list)
    rounds: int = 0
    seconds: float = 0.0
    repeated_intents: int = 0  # intents with fewer distinct questions than their tiers asked
    bounded: bool = False  # stopped by LEARN_SECONDS before the rounds asked for
    cost_usd: float = 0.0  # what the learning period's answers cost (GET /v1/usage)


# --- data ----------------------------------------------------------------------------------------------------------


def intent_rows() -> list[tuple[str, str]]:
    """Every Banking77 train row (text, category), as `parley models train intent --train train.csv` reads it."""
    with open(DATA / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        return [(row["text"].strip(), row["category"].strip()) for row in csv.DictReader(handle) if row["text"].strip()]


def learn_questions(
    texts: list[str], intents: list[str], documents: list[dict], *, per_tier: int, seed: int, only: int | None
) -> tuple[dict[str, list[list[Question]]], int]:
    """intent -> per tier of LEARN_TIERS, its `per_tier` questions: train questions that are not sentences of the
    knowledge base, shuffled, consecutive blocks per tier (cycling when an intent has too few: the count returned)."""
    text_of = {document["title"]: f" {document['text']} " for document in documents}
    pools: dict[str, list[str]] = defaultdict(list)
    for text, intent in zip(texts, intents, strict=True):
        if f" {_sentence(text)} " not in text_of[intent]:
            pools[intent].append(text)
    rng = np.random.default_rng(seed)
    chosen = sorted(pools)[:only] if only else sorted(pools)
    plan, repeated = {}, 0
    for intent in chosen:
        pool = [pools[intent][i] for i in rng.permutation(len(pools[intent]))]
        needed = per_tier * len(LEARN_TIERS)
        repeated += len(pool) < needed
        picked = [Question(pool[n % len(pool)], intent) for n in range(needed)]
        plan[intent] = [picked[t * per_tier : (t + 1) * per_tier] for t in range(len(LEARN_TIERS))]
    return plan, repeated


def intent_model(rows: list[tuple[str, str]]):
    """The frozen-recipe intent model of `rows` (models.training.Trained), trained once and cached in
    var/bench-cache/ keyed by the rows and the training code. Returns (trained, seconds it took or None if cached)."""
    from core.embeddings import ensure_model, model_dir
    from core.registry import fingerprint
    from models.intent.pyfunc import ARTIFACT
    from models.intent.train import train_intent
    from models.training import Trained

    key = cache_key(fingerprint(rows), "frozen", 0, model_dir(MODELS).name, sources=INTENT_SOURCES)
    final = cached_dir(f"routing-policy-intent-{key}")
    saved = final / "trained.json"
    if not saved.exists():
        print(f"  training the intent model (frozen recipe, {len(rows)} rows; once, cached in {final}) ...", flush=True)
        started = time.perf_counter()
        partial_dir = final.with_name(final.name + ".partial")
        shutil.rmtree(partial_dir, ignore_errors=True)
        trained = train_intent(
            rows, base_encoder_dir=ensure_model(MODELS), folder=partial_dir / ARTIFACT, recipe="frozen"
        )

        def plain(value):
            return value.item() if hasattr(value, "item") else str(value)

        record = {"metrics": trained.metrics, "params": trained.params, "confusion": trained.confusion}
        (partial_dir / "trained.json").write_text(json.dumps(record, default=plain), encoding="utf-8")
        publish(partial_dir, final)
        seconds = time.perf_counter() - started
    else:
        seconds = None
    record = json.loads(saved.read_text(encoding="utf-8"))
    return Trained(final / ARTIFACT, record["metrics"], record["params"], record["confusion"], rows), seconds


# --- tenants and turns ---------------------------------------------------------------------------------------------


def new_tenant(client, name: str, documents: list[dict], policy: dict) -> Tenant:
    admin = {"Authorization": f"Bearer {BENCH_ADMIN_TOKEN}"}
    created = _ok(client.post("/v1/tenants", json={"name": name}, headers=admin), 201)
    auth = {"Authorization": f"Bearer {created['api_key']}"}
    intent_of = {}
    for document in documents:
        intent_of[_ok(client.post("/v1/kb/documents", json=document, headers=auth), 201)["id"]] = document["title"]
    tenant = Tenant(created["id"], auth, intent_of)
    set_policy(client, tenant, policy)
    return tenant


def set_policy(client, tenant: Tenant, policy: dict) -> None:
    _ok(client.put(f"/v1/tenants/{tenant.id}/policy", json=policy, headers=tenant.auth))


def make_champion(client, tenant: Tenant, trained) -> int:
    """Register the trained model as the tenant's intent model (champion: it is the first) and wait until serving has
    loaded it, as its first turn would make it."""
    from models.intent.pyfunc import ARTIFACT, PIP_REQUIREMENTS, IntentPyfunc
    from models.training import register

    registered = register(
        tenant_id=tenant.id,
        kind="intent",
        trained=trained,
        registry=client.app.state.registry,
        python_model=IntentPyfunc(),
        artifact=ARTIFACT,
        pip_requirements=PIP_REQUIREMENTS,
    )
    if not registered.champion:
        raise RuntimeError(f"intent model of {tenant.id} not promoted: {registered.promotion}")
    champions = client.app.state.champions
    client.portal.call(partial(champions.predict, tenant_id=tenant.id, text="warm up"))
    client.portal.call(champions.settle)
    if champions.loaded_version(tenant.id) != registered.version:
        raise RuntimeError(f"serving did not load intent__{tenant.id} v{registered.version}")
    return registered.version


def ask(client, tenant: Tenant, question: Question) -> tuple[Turn, Asked]:
    """One new conversation with one question, as routing_cost's replay asks it."""
    conversation = _ok(client.post("/v1/conversations", headers=tenant.auth), 201)
    started = time.perf_counter()
    response = client.post(
        f"/v1/conversations/{conversation['id']}/messages", json={"text": question.text}, headers=tenant.auth
    )
    ms = (time.perf_counter() - started) * 1000
    body = _ok(response)
    reply = body["reply"]
    turn = turn_of(question, body, intent_of=tenant.intent_of, ms=ms)
    return turn, Asked(reply["message_id"], reply.get("intent"), bool(reply.get("out_of_scope")))


def learn(
    client, tenant: Tenant, plan: dict[str, list[list[Question]]], *, per_tier: int, max_seconds: float
) -> Learning:
    """The A/B period: rounds of [kb], [budget/small], [premium/large], one question per intent each, every answer
    rated by the customer."""
    learning = Learning()
    started = time.perf_counter()
    since = datetime.now(UTC).isoformat()
    for round_ in range(per_tier):
        for index, tier in enumerate(LEARN_TIERS):
            set_policy(client, tenant, {"tiers": [tier]})
            for intent in plan:
                turn, asked = ask(client, tenant, plan[intent][index][round_])
                rating = "up" if turn.right else "down"
                _ok(
                    client.post(
                        f"/v1/messages/{asked.message_id}/feedback", json={"rating": rating}, headers=tenant.auth
                    )
                )
                learning.turns.append(turn)
                learning.asked.append(asked)
        learning.rounds = round_ + 1
        if time.perf_counter() - started > max_seconds and learning.rounds < per_tier:
            learning.bounded = True
            break
    learning.seconds = time.perf_counter() - started
    usage = _ok(client.get("/v1/usage", params={"from": since}, headers=tenant.auth))
    learning.cost_usd = usage["total_cost_usd"]
    return learning


def evaluate(client, tenant: Tenant, run: Run, questions: Sequence[Question], vendors: dict) -> list[Asked]:
    """routing_cost's replay on an existing tenant (whose policy is run.policy), metered the same way."""
    set_policy(client, tenant, run.policy)
    since = datetime.now(UTC).isoformat()  # the learning tenant's usage before (the learning period) is not this run's
    before = {name: vendor.stats() for name, vendor in vendors.items()}
    asked = []
    for question in questions:
        turn, seen = ask(client, tenant, question)
        run.turns.append(turn)
        asked.append(seen)
    after = {name: vendor.stats() for name, vendor in vendors.items()}
    run.billed_usd, run.vendor_calls, run.declined = _vendor_bill(before, after)
    usage = _ok(client.get("/v1/usage", params={"from": since, "group_by": "model"}, headers=tenant.auth))
    run.metered_usd = usage["total_cost_usd"]
    run.usage_rows = usage["rows"]
    run.rows_usd = sum(row["cost_usd"] for row in usage["rows"])
    run.usage_calls = sum(row["calls"] for row in usage["rows"])
    run.usage_cache_hits = sum(row["cache_hits"] for row in usage["rows"])
    rows = usage_rows(client.app.state.db.url, tenant.id)
    return [
        Asked(a.message_id, a.intent, a.out_of_scope, *rows.get(a.message_id, ("?", 0.0)))  # type: ignore[arg-type]
        for a in asked
    ]


def usage_rows(url: str, tenant_id: str) -> dict[str, tuple[str, float]]:
    """message id -> (routed_by, cost) of the tenant's usage rows (what the router recorded per answer)."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT message_id, routed_by, cost_usd FROM usage WHERE tenant_id = %s AND message_id IS NOT NULL",
            (tenant_id,),
        ).fetchall()
    return {message_id: (routed_by, float(cost)) for message_id, routed_by, cost in rows}


# --- the lakehouse -------------------------------------------------------------------------------------------------


def run_lakehouse(root: Path, url: str, mlflow_uri: str) -> tuple[dict, float, int]:
    """dg.materialize of LAKE_ASSETS + CHECKS for real, as tests/lake/conftest.py runs them; (routing/policy's
    metadata, seconds, steps)."""
    import dagster as dg

    from pipelines.definitions import LAKE_ASSETS
    from pipelines.defs.quality.checks import CHECKS
    from pipelines.keys import ROUTING_POLICY
    from pipelines.resources import LakeResource, LlmResource, ModelsResource, PostgresResource

    started = time.perf_counter()
    result = dg.materialize(
        [*LAKE_ASSETS, *CHECKS],
        resources={
            "lake": LakeResource(root=str(root)),
            "models": ModelsResource(mlflow_uri=mlflow_uri, models_dir=str(MODELS)),
            "postgres": PostgresResource(url=url),
            "llm": LlmResource(enabled=False),
        },
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    seconds = time.perf_counter() - started
    if not result.success:
        failed = [event.step_key for event in result.all_events if event.is_step_failure]
        raise RuntimeError(f"the lakehouse run failed: {', '.join(str(step) for step in failed)}")
    (metadata,) = [
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == ROUTING_POLICY
    ]
    steps = sum(event.is_step_success for event in result.all_events)
    return {name: value.value for name, value in metadata.items()}, seconds, steps


def list_routes(client, tenant: Tenant) -> list[dict]:
    return _ok(client.get(f"/v1/tenants/{tenant.id}/policy/intents", headers=tenant.auth))


# --- report --------------------------------------------------------------------------------------------------------


def tallies(learning: Learning) -> dict[str, dict[str, list[int]]]:
    """intent (the model's label, as the pipeline reads it) -> tier -> [answers, thumbs up]; cache excluded."""
    found: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for turn, asked in zip(learning.turns, learning.asked, strict=True):
        if asked.intent is None or turn.bucket == "cache":
            continue
        tier = turn.bucket.removeprefix("llm ")
        found[asked.intent][tier][0] += 1
        found[asked.intent][tier][1] += turn.right
    return found


def report_learning(learning: Learning, per_tier: int, intents: int) -> None:
    n = len(learning.turns)
    by_bucket: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for turn in learning.turns:
        by_bucket[turn.bucket][0] += 1
        by_bucket[turn.bucket][1] += turn.right
    parts = "; ".join(f"{bucket} {c}, thumbs up {u / c:.3f}" for bucket, (c, u) in sorted(by_bucket.items()))
    labelled = sum(a.intent is not None for a in learning.asked)
    right_label = sum(_label(a.intent or "") == t.intent for t, a in zip(learning.turns, learning.asked, strict=True))
    print(
        f"  learning period: {n} conversations ({intents} intents x {len(LEARN_TIERS)} tiers x {learning.rounds} "
        f"rounds{'' if not learning.bounded else f', STOPPED by the {LEARN_SECONDS:.0f} s bound of {per_tier}'}), "
        f"policy tiers rotated per round {' -> '.join(f'[{t}]' for t in LEARN_TIERS)}, every answer rated through the "
        f"feedback endpoint: {learning.seconds:.0f} s ({learning.seconds / max(1, n) * 1000:.0f} ms per conversation); "
        f"it cost ${learning.cost_usd:.4f} (${learning.cost_usd / max(1, n) * 1000:.4f} per 1,000 conversations)"
    )
    print(f"    answered by (thumbs up = right by the accuracy rule): {parts}")
    print(
        f"    intent labels on the questions: {labelled}/{n}, the question's intent {right_label}/{n} (the intent "
        f"model was trained on these train rows); {sum(a.out_of_scope for a in learning.asked)} out of scope or "
        f"uncertain; "
        f"{learning.repeated_intents} intents had too few distinct questions and asked some again"
    )


def report_routes(routes: list[dict], lake: dict, seconds: float, steps: int) -> None:
    tiers = Counter(route["tier"] for route in routes)
    cheaper = sum(route["tier"] != route["baseline_tier"] for route in routes)
    print(
        f"  lakehouse: dg.materialize of LAKE_ASSETS + CHECKS, {steps} steps succeeded in {seconds:.0f} s; "
        f"routing/policy: {lake.get('answers_measured')} answers measured, {lake.get('routes')} routes, "
        f"{lake.get('routes_to_a_cheaper_tier')} to a cheaper tier than the intent's best"
    )
    print(
        f"  routes (GET /v1/tenants/{{id}}/policy/intents): {len(routes)}: "
        + ", ".join(f"{tier} {count}" for tier, count in tiers.most_common())
        + f"; {cheaper} cheaper than the intent's best tier, "
        + ", ".join(f"best {t} {c}" for t, c in Counter(r["baseline_tier"] for r in routes).most_common())
    )


def report_by_route(learned: Run, asked: list[Asked], plain: Run, anchor: Run, routes: dict[str, dict]) -> None:
    """The learned run's questions grouped by the route their (labelled) intent has, against the other two runs on
    the same questions."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, seen in enumerate(asked):
        route = routes.get(seen.intent or "")
        groups[route["tier"] if route else "no route"].append(index)
    total = learned.metered_usd or 1.0
    print("  the learned run's questions by the route of their intent (same questions in the other runs):")
    for tier, rows in sorted(groups.items(), key=lambda item: -len(item[1])):
        explored = sum(asked[i].routed_by == "explore" for i in rows)
        cost = sum(asked[i].cost_usd for i in rows)
        answered = Counter(learned.turns[i].bucket for i in rows)

        def right(run: Run, rows=rows) -> float:
            return float(np.mean([run.turns[i].right for i in rows]))

        top = ", ".join(f"{bucket} {count}" for bucket, count in answered.most_common(3))
        print(
            f"    {tier:<14} {len(rows):5d} questions ({explored} explored)  accuracy learned {right(learned):.3f}  "
            f"no routes {right(plain):.3f}  always-expensive {right(anchor):.3f}  cost share {cost / total:.1%}"
            f"  (answered by {top})"
        )


def report_quality(found: dict[str, dict[str, list[int]]], routes: dict[str, dict], tolerance: float) -> None:
    """Why the intents went where they went: each cheaper tier's measured quality (learning-period thumbs, by the
    intent model's label, as the pipeline reads them) against the intent's best tier's."""
    from models.routing.policy import MIN_SAMPLES, TierFigures

    cost = {tier: n for n, tier in enumerate(LEARN_TIERS)}
    for tier in LEARN_TIERS[:-1]:
        counts = Counter()
        gaps = []
        for intent, tiers in found.items():
            figures = {t: TierFigures(t, n, up / n, 0.0) for t, (n, up) in tiers.items() if n >= MIN_SAMPLES}
            route = routes.get(intent, {}).get("tier")
            if tier not in figures:
                counts["under min"] += 1
                continue
            best = max(f.quality for f in figures.values())
            gaps.append(best - figures[tier].quality)
            if route == tier:
                counts["routed"] += 1
            elif route in cost and cost[route] < cost[tier]:
                counts["cheaper routed"] += 1
            elif figures[tier].quality >= best - tolerance:
                counts["bound"] += 1
            else:
                counts["below"] += 1
        gap = np.percentile(gaps, [25, 50, 75]) if gaps else [float("nan")] * 3
        print(
            f"    {tier:<13} routed {counts['routed']:2d} intents; a cheaper tier routed "
            f"{counts['cheaper routed']:2d}; "
            f"mean within {tolerance} of the best but the Wilson bound short {counts['bound']:2d}; mean below "
            f"{counts['below']:2d}; under {MIN_SAMPLES} answers {counts['under min']}; its gap to the best tier's mean "
            f"per intent p25/p50/p75 {gap[0]:.3f} / {gap[1]:.3f} / {gap[2]:.3f}"
        )


def report_unmeasured_best(found: dict[str, dict[str, list[int]]], routes: dict[str, dict]) -> None:
    """Routes to a tier that measured worse than a tier left out of the comparison for having too few answers."""
    from models.routing.policy import MIN_SAMPLES

    cases = []
    for intent, route in sorted(routes.items()):
        tiers = found.get(intent, {})
        n, up = tiers.get(route["tier"], (0, 0))
        if not n:
            continue
        better = [(t, u, m) for t, (m, u) in tiers.items() if 0 < m < MIN_SAMPLES and u / m > up / n]
        if better:
            shown = ", ".join(f"{t} {u}/{m}" for t, u, m in better)
            cases.append(f"{intent} -> {route['tier']} {up}/{n} (not {shown})")
    print(
        f"    routes to a tier measured worse than one with under {MIN_SAMPLES} answers (left out of the comparison): "
        f"{len(cases)}" + (": " + "; ".join(cases) if cases else "")
    )


def report_intents(
    found: dict[str, dict[str, list[int]]], routes: dict[str, dict], learned: Run, asked: list[Asked], anchor: Run
) -> None:
    """One line per intent: its learning-period thumbs per tier, its route, and the test questions labelled with it."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, seen in enumerate(asked):
        by_label[seen.intent or "(none)"].append(index)
    print(
        "  per intent (label of the intent model): learning thumbs up/answers per tier kb | budget | premium; route "
        "(best); test questions with the label: learned right, always-expensive right"
    )
    width = max(len(intent) for intent in set(found) | set(by_label))
    for intent in sorted(set(found) | set(by_label)):
        tiers = found.get(intent, {})
        measured = " | ".join(f"{tiers[t][1]:2d}/{tiers[t][0]:2d}" if t in tiers else "  -  " for t in LEARN_TIERS)
        route = routes.get(intent)
        routed = f"{route['tier']} ({route['baseline_tier']})" if route else "no route"
        rows = by_label.get(intent, [])
        print(
            f"    {intent:<{width}} {measured}  {routed:<30} test {len(rows):3d}: "
            f"{sum(learned.turns[i].right for i in rows):3d} vs {sum(anchor.turns[i].right for i in rows):3d}"
        )


def verdict(anchor: Run, learned: Run) -> bool:
    cost = learned.metered_usd / anchor.metered_usd
    accuracy = learned.accuracy / anchor.accuracy
    cost_ok, accuracy_ok = cost <= GOAL_COST_RATIO, accuracy >= GOAL_ACCURACY_RATIO
    passed = cost_ok and accuracy_ok
    print(
        f"goal: the learned routing policy at least {1 - GOAL_COST_RATIO:.0%} cheaper than always-expensive at "
        f"{GOAL_ACCURACY_RATIO:.0%} or more of its accuracy: {'PASS' if passed else 'FAIL'} (cost {cost:.3f}x "
        f"{'met' if cost_ok else 'MISSED'}, accuracy {learned.accuracy:.3f} / {anchor.accuracy:.3f} = {accuracy:.3f} "
        f"{'met' if accuracy_ok else 'MISSED'})"
    )
    low, high = accuracy_interval(anchor, learned)
    print(f"  accuracy difference learned - always-expensive, 95% interval (paired): {low:+.1f} to {high:+.1f} points")
    return passed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.routing_policy", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--questions", type=int, default=QUESTIONS, help=f"test questions replayed (default {QUESTIONS})"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="the test sample's seed (routing_cost's)")
    parser.add_argument(
        "--learn-per-tier",
        type=int,
        default=LEARN_PER_TIER,
        help=f"learning answers per intent and tier (default {LEARN_PER_TIER})",
    )
    parser.add_argument(
        "--learn-seconds",
        type=float,
        default=LEARN_SECONDS,
        help=f"stop the learning period after the round that passes this (default {LEARN_SECONDS:.0f})",
    )
    parser.add_argument("--intents", type=int, default=None, help="learn only the first N intents (development)")
    parser.add_argument("--kb-questions", type=int, default=KB_QUESTIONS)
    args = parser.parse_args(argv)
    if not (DATA / "banking77" / "train.csv").exists():
        print(f"routing policy: skipped, {DATA / 'banking77'} not found")
        return

    from core.llm.intent_routes import DEFAULT_TTL_S
    from core.llm.policy import TenantPolicy

    started = time.perf_counter()
    models = built_models()
    texts, intents, vectors = train_questions()
    documents = kb_documents(texts, intents, vectors, args.kb_questions)
    questions = test_sample(args.questions, args.seed)
    plan, repeated = learn_questions(
        texts, intents, documents, per_tier=args.learn_per_tier, seed=LEARN_SEED, only=args.intents
    )
    rows = intent_rows()
    trained, train_seconds = intent_model(rows)
    learned = Run("learned routes", dict(ROUTER_POLICY))
    plain = Run("router, no routes", dict(ROUTER_POLICY))
    anchor = Run("always expensive", dict(ANCHOR_POLICY))
    tenants: list[Tenant] = []
    try:
        with replay_platform(models, vectors, intents) as (client, vendors, scratch):
            learner = new_tenant(client, "Routing policy: learned routes", documents, {"tiers": ["kb"]})
            tenants.append(learner)
            make_champion(client, learner, trained)
            learning = learn(client, learner, plan, per_tier=args.learn_per_tier, max_seconds=args.learn_seconds)
            learning.repeated_intents = repeated
            last_learning_turn = time.monotonic()
            set_policy(client, learner, learned.policy)  # the routes are learnt for the policy they refine
            settings = client.app.state.settings
            lake, lake_seconds, steps = run_lakehouse(
                scratch / "lake", client.app.state.db.url, settings.mlflow_location
            )
            routes = list_routes(client, learner)
            # The router rereads a tenant's routes every DEFAULT_TTL_S: wait that long after the learning period's
            # last turn (usually over already), as a serving process would.
            time.sleep(max(0.0, DEFAULT_TTL_S - (time.monotonic() - last_learning_turn)))
            learned_asked = evaluate(client, learner, learned, questions, vendors)
            unlearned = new_tenant(client, "Routing policy: router, no routes", documents, plain.policy)
            tenants.append(unlearned)
            make_champion(client, unlearned, trained)
            plain_asked = evaluate(client, unlearned, plain, questions, vendors)
            replay(client, anchor, documents, questions, vendors)
    finally:
        for tenant in tenants:  # serving's download of the tenants' models (settings.models_dir is the shared one)
            shutil.rmtree(MODELS / "registry-cache" / f"intent__{tenant.id}", ignore_errors=True)

    print(
        f"routing policy on Banking77: learned per-intent routes; {len(questions)} test questions (seed {args.seed}), "
        f"one conversation each, against a KB of {len(documents)} documents (one per intent, {args.kb_questions} "
        f"train questions each)"
    )
    print(f"  {machine_line()}; {code_line()}")
    print(
        "  SIMULATED models (bench/_vendors.py, own processes on 127.0.0.1): premium/large $2.50/$10.00 per Mtok "
        "quality 0.9 (kNN over all train questions), budget/small $0.15/$0.60 quality 0.6 (word overlap over the "
        "passages shown); everything else is Parley's own code"
    )
    holdout = trained.metrics.get("accuracy", float("nan"))
    labelled_right = np.mean(
        [_label(a.intent or "") == t.intent for a, t in zip(learned_asked, learned.turns, strict=True)]
    )
    print(
        f"  intent model: frozen recipe on all {len(rows)} Banking77 train rows "
        f"({'cached' if train_seconds is None else f'trained in {train_seconds:.0f} s'}; held-out accuracy "
        f"{holdout:.3f}), the champion of the learned-routes and no-routes tenants; labelled "
        f"{sum(a.intent is not None for a in learned_asked)}/{len(learned_asked)} test questions, "
        f"{labelled_right:.3f} right, {sum(a.out_of_scope for a in learned_asked)} out of scope or uncertain (kb and "
        "cache only)"
    )
    report_learning(learning, args.learn_per_tier, len(plan))
    report_routes(routes, lake, lake_seconds, steps)
    tolerance = TenantPolicy(**learned.policy).route_tolerance
    print(f"  why each intent went where it went (learning-period thumbs per intent; route_tolerance {tolerance}):")
    by_intent = {route["intent"]: route for route in routes}
    report_quality(tallies(learning), by_intent, tolerance)
    report_unmeasured_best(tallies(learning), by_intent)
    print("evaluation (same questions, same order, one tenant each):")
    for run in (learned, plain, anchor):
        report_run(run, anchor)
        if run is learned:
            routed = Counter(a.routed_by for a in learned_asked)
            print(
                "    routed by (usage rows): "
                + ", ".join(f"{name} {count / len(learned_asked):.1%}" for name, count in routed.most_common())
            )
    report_by_route(learned, learned_asked, plain, anchor, by_intent)
    report_intents(tallies(learning), by_intent, learned, learned_asked, anchor)
    plain_passes = (
        plain.metered_usd / anchor.metered_usd <= GOAL_COST_RATIO
        and plain.accuracy / anchor.accuracy >= GOAL_ACCURACY_RATIO
    )
    print(
        f"  learned / always-expensive: cost {learned.metered_usd / anchor.metered_usd:.3f}x "
        f"(${learned.per_1000:.4f} vs ${anchor.per_1000:.4f} per 1,000 conversations), accuracy ratio "
        f"{learned.accuracy / anchor.accuracy:.3f} ({learned.accuracy:.3f} vs {anchor.accuracy:.3f}); "
        f"no routes: cost {plain.metered_usd / anchor.metered_usd:.3f}x, accuracy ratio "
        f"{plain.accuracy / anchor.accuracy:.3f} (its questions labelled: "
        f"{sum(a.intent is not None for a in plain_asked)}; by the goal's measure it "
        f"{'would pass' if plain_passes else 'would not pass either'})"
    )
    verdict(anchor, learned)
    print(f"  ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
