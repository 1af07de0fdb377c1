"""The dashboards tier over a year of daily facts for 1,000 tenants, and the export of one day into the metrics store.

Goals (issue 7):
  1. dashboard API P95 <= 50 ms over a year of daily data for 1,000 tenants;
  2. the export of one day for 1,000 tenants (pipelines/defs/metrics/assets.export_gold) <= 5 s.

Setup, every run (nothing cached; everything in one temp folder, removed at the end):
  - REAL: a fresh embedded PostgreSQL (core.db.EmbeddedPostgres, its default settings) migrated with core.db.migrate;
    TENANTS real tenants made with core.tenancy.create_tenant, each with its own API key from create_api_key (a
    viewer key, every tenth an owner key); the analytics app (analytics_api.app.create_app) served by uvicorn in its
    OWN PROCESS on 127.0.0.1 (`python -m uvicorn analytics_api.app:create_app --factory`, configured like any
    deployment through PARLEY_POSTGRES_URL and PARLEY_PROVIDERS_FILE: a catalog with a cheap and a premium model, so
    the costs endpoint prices its baseline), one worker, access log off as `parley serve` has it.
  - SIMULATED (seeded numpy): the metrics store's rows, DAYS days ending END for every tenant, shaped like gold's:
    tenant_daily (one row per tenant-day; tenants' sizes lognormal, median 25 conversations a day, weekends quieter,
    a slight growth over the year; outcomes, messages, tiers, feedback, sentiment, tokens, cost and latency drawn per
    tenant and day), intent_daily (6-10 of the tenant's 12 Banking77 intents a day, about 8) and unanswered_daily (3-7
    questions a day, about 5, real Banking77 utterances normalised as gold normalises them). Loaded with COPY straight
    into the store's tables (not through core.metrics.replace_days), in day order (how the daily export lays rows
    down: a tenant's year is spread over the table, not clustered), each primary key dropped for the COPY and rebuilt
    after it, then VACUUM ANALYZE. The usage table: see below.
Measured, sequentially, one request at a time over one keep-alive connection, after WARM_UP_LOADS untimed loads:
  REQUESTS dashboard loads, each from a different random tenant with its own key over one year (`from` = END - 364,
  `to` = END): the seven requests of a dashboard (overview; timeseries of conversations by day, deflection_rate by
  week and cost_usd by month; intents; unanswered; costs) in a shuffled order. Every request's figures are checked
  against the same function called directly. Anchor, same run, same tenants: the same core.analytics functions
  called directly on one psycopg AsyncConnection (dict_row, autocommit, as the app's pool has them) in this process,
  i.e. the SQL work without HTTP, auth or serialisation; API and direct call alternate which goes first per load, so
  neither always finds the other's pages cached. An API request also does what any does: the key lookup, and on a
  key's first use in a minute an UPDATE of its last_used_at (a commit); random tenants make that most first requests.
  Beside the goal: the costs endpoint also reads the realised routing savings from routing_daily, the roll-up of the
  usage rows the metrics asset refreshes (refreshed here after the load); it grows with a tenant's intents and days,
  not with its traffic. The usage table holds, SIMULATED from tenant_daily's counts (one
  row per answer and per conversation summary, inserted in time order): every row of USAGE_QUANTILES tenants (those at
  these quantiles of size, with routing_policy rows for their top four intents) and a FILLER_SHARE sample of every
  other tenant's, so the planner and the heap see many tenants (the main phase's costs requests therefore read only
  that share of their tenants' usage). The full tenants' costs requests are timed apart. A real usage table holds
  every tenant's rows in full (tens of millions), so less of it would be cached: their figures are a lower bound.
Export (after the server stops): a Delta lake in the temp folder with gold/tenant_daily and gold/intent_daily holding
  the same year as the store (gold's schemas, one file per tenant as gold writes them) and silver/messages of END
  only (silver's schema; each tenant's END conversations, 1 + Poisson turns of a customer message and an answer, the
  customer's texts real Banking77 utterances, `answered` false for the tenant's unanswered share; the columns export
  does not read filled plainly or left null; a real silver holds every day, which this one does not). Timed:
  export_gold(lake, dsn, days=[END]) EXPORT_RUNS times, median (it replaces the day, so every run does the same
  work), each followed by a check that the store's rows for END equal gold's (and the unanswered questions equal
  pipelines.transforms.gold.unanswered_questions over silver's END). Anchor: the read part alone, the three Delta
  tables read as export reads them (Lake.scan: polars' Delta reader, the day filter pushed down; the columns export
  reads), once per run (before the export on even runs, after it on odd ones), median; beside it the same reads
  through Arrow datasets, the export's earlier reader (it opens every file of a file-per-tenant table).
Every loop is bounded in count and time. `--tenants/--days/--requests` make small runs; `--explain` also prints
auto_explain's plans (EXPLAIN ANALYZE, BUFFERS) of every dashboard query and of the export's statements.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from bench._data import DATA, ROOT, code_line, machine_line
from bench._harness import free_port, percentile, stop

GOAL_P95_MS = 50.0
GOAL_EXPORT_S = 5.0
TENANTS, DAYS, REQUESTS = 1_000, 365, 200
END = date(2026, 11, 30)
RANGE_DAYS = 365
WARM_UP_LOADS = 20
USAGE_QUANTILES = (0.5, 0.9, 0.95, 0.99)
USAGE_REQUESTS = 10
FILLER_SHARE = 0.02  # of the other tenants' usage rows, so the planner and the heap see many tenants
EXPORT_RUNS = 3
SEED = 7
POOL_INTENTS = 12  # a tenant's intents
POOL_QUESTIONS = 30  # a tenant's recurring unanswered questions
OWNER_EVERY = 10
COPY_CHUNK = 200_000
START_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 30
MEASURE_BUDGET_S = 300  # the request phase stops here whatever its count
EXPORT_BUDGET_S = 150  # no export run starts after this (the first always does)
PROVIDERS = """
providers:
  budget:
    protocol: openai
    base_url: http://127.0.0.1:9/v1
    models:
      small: {input_per_mtok: 0.15, output_per_mtok: 0.60, context_tokens: 128000, quality: 0.6}
  premium:
    protocol: openai
    base_url: http://127.0.0.1:9/v1
    models:
      large: {input_per_mtok: 2.50, output_per_mtok: 10.00, context_tokens: 128000, quality: 0.9}
"""
ENDPOINTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("overview", "/v1/analytics/overview", {}),
    ("timeseries conversations/day", "/v1/analytics/timeseries", {"metric": "conversations", "interval": "day"}),
    ("timeseries deflection/week", "/v1/analytics/timeseries", {"metric": "deflection_rate", "interval": "week"}),
    ("timeseries cost_usd/month", "/v1/analytics/timeseries", {"metric": "cost_usd", "interval": "month"}),
    ("intents", "/v1/analytics/intents", {}),
    ("unanswered", "/v1/analytics/unanswered", {}),
    ("costs", "/v1/analytics/costs", {}),
)


def log(message: str) -> None:
    print(f"  {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Simulated data


@dataclass
class Catalog:
    """Banking77's training utterances grouped by intent (sorted by intent), and each normalised as gold does."""

    intents: list[str]
    texts: np.ndarray  # object array of str
    normalised: np.ndarray
    offsets: np.ndarray  # first text of each intent
    counts: np.ndarray


def normalise(text: str) -> str:
    """pipelines.transforms.gold.unanswered_questions' normalisation, in Python."""
    return re.sub(r"\s+", " ", text.lower()).strip().rstrip("?!.,;: ")


def banking77() -> Catalog:
    with open(DATA / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        rows = sorted((row["category"], row["text"].strip()) for row in csv.DictReader(handle))
    intents = sorted({category for category, _ in rows})
    index = {intent: n for n, intent in enumerate(intents)}
    categories = np.array([index[category] for category, _ in rows])
    counts = np.bincount(categories, minlength=len(intents))
    texts = np.array([text for _, text in rows], dtype=object)
    return Catalog(
        intents=intents,
        texts=texts,
        normalised=np.array([normalise(text) for text in texts], dtype=object),
        offsets=np.cumsum(counts) - counts,
        counts=counts,
    )


@dataclass
class Store:
    """The simulated metrics store (polars frames with the store's columns) and what made it, per tenant."""

    tenant_daily: object
    intent_daily: object
    unanswered_daily: object
    size: np.ndarray  # mean conversations a day
    pool: np.ndarray  # (tenants, POOL_INTENTS) catalog intent indexes, most frequent first
    questions: np.ndarray  # (tenants, POOL_QUESTIONS) catalog text indexes, most asked first
    traits: dict[str, np.ndarray] = field(default_factory=dict)  # per tenant, shape (tenants, 1)
    last_conversations: np.ndarray | None = None  # (tenants,) conversations on END


def _zipf(n: int, s: float) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1) ** s


def _top_k(rng: np.random.Generator, weights: np.ndarray, shape: tuple[int, ...], k: int) -> np.ndarray:
    """Per cell, `k` pool positions drawn without replacement by `weights` (Gumbel top-k), in drawn order."""
    keys = np.log(weights) + rng.gumbel(size=(*shape, len(weights)))
    return np.argsort(-keys, axis=-1)[..., :k]


def make_store(tenant_ids: list[str], *, days: int, end: date, seed: int, catalog: Catalog) -> Store:
    import polars as pl

    from core.metrics import INTENT_DAILY_COLUMNS, TENANT_DAILY_COLUMNS

    rng = np.random.default_rng(seed)
    t_count = len(tenant_ids)
    first = end - timedelta(days=days - 1)
    day_numbers = np.arange(days) + (first - date(1970, 1, 1)).days
    weekday = (day_numbers + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)

    def trait(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, (t_count, 1))

    size = np.clip(rng.lognormal(np.log(25), 1.0, t_count), 2, 2_000)
    season = np.where(weekday >= 5, 0.6, 1.0) * np.linspace(0.85, 1.15, days)
    conversations = rng.poisson(size[:, None] * season[None, :] * rng.gamma(25, 1 / 25, (t_count, days)))
    open_share = np.zeros(days)
    open_share[-1] = 0.3
    if days > 1:
        open_share[-2] = 0.05
    traits = {
        "resolve": rng.beta(6, 3, (t_count, 1)),
        "handoff": trait(0.3, 0.6),  # of the unresolved
        "turns": trait(0.5, 1.5),  # extra customer messages per conversation
        "unanswered": trait(0.04, 0.15),
        "cache": trait(0.02, 0.15),
        "kb": trait(0.2, 0.6),
        "local": trait(0, 0.1) * (rng.random((t_count, 1)) < 0.3),
        "up": trait(0.03, 0.10),
        "down": trait(0.005, 0.03),
        "negative": trait(0.08, 0.25),
        "positive": trait(0.3, 0.6),
        "tokens_in": trait(500, 1200),
        "tokens_out": trait(90, 260),
        "price_in": rng.choice([0.15, 0.4, 1.1, 2.5], (t_count, 1)),
        "latency": trait(250, 900),
    }
    open_ = rng.binomial(conversations, open_share[None, :])
    closed = conversations - open_
    resolved = rng.binomial(closed, traits["resolve"])
    handoff = rng.binomial(closed - resolved, traits["handoff"])
    abandoned = closed - resolved - handoff
    user = conversations + rng.poisson(conversations * traits["turns"])
    assistant = user - rng.binomial(user, 0.03)
    cache = rng.binomial(assistant, traits["cache"])
    kb = rng.binomial(assistant - cache, traits["kb"])
    local = rng.binomial(assistant - cache - kb, traits["local"])
    llm = assistant - cache - kb - local
    up, down = rng.binomial(assistant, traits["up"]), rng.binomial(assistant, traits["down"])
    negative = rng.binomial(user, traits["negative"])
    positive = rng.binomial(user - negative, traits["positive"])
    neutral = user - negative - positive
    input_tokens = np.rint(llm * traits["tokens_in"] * rng.gamma(50, 1 / 50, (t_count, days))).astype(np.int64)
    output_tokens = np.rint(llm * traits["tokens_out"] * rng.gamma(50, 1 / 50, (t_count, days))).astype(np.int64)
    cost = (input_tokens * traits["price_in"] + output_tokens * traits["price_in"] * 4) / 1e6
    latency_p50 = traits["latency"] * rng.gamma(30, 1 / 30, (t_count, days))

    def ratio(part, whole):
        return np.where(whole > 0, part / np.maximum(whole, 1), np.nan)

    with np.errstate(invalid="ignore"):
        sentiment_mean = np.where(
            user > 0,
            np.clip((0.6 * positive - 0.55 * negative) / np.maximum(user, 1) + rng.normal(0, 0.05, user.shape), -1, 1),
            np.nan,
        )
    columns = {
        "conversations": conversations,
        "resolved": resolved,
        "handoff": handoff,
        "abandoned": abandoned,
        "open": open_,
        "deflection_rate": ratio(resolved, resolved + handoff + abandoned),
        "messages": user + assistant,
        "user_messages": user,
        "assistant_messages": assistant,
        "unanswered": rng.binomial(user, traits["unanswered"]),
        "answered_by_cache": cache,
        "answered_by_kb": kb,
        "answered_by_local": local,
        "answered_by_llm": llm,
        "feedback_up": up,
        "feedback_down": down,
        "satisfaction": ratio(up, up + down),
        "sentiment_negative": negative,
        "sentiment_neutral": neutral,
        "sentiment_positive": positive,
        "sentiment_mean": sentiment_mean,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": np.round(cost, 8),
        "cost_per_conversation_usd": ratio(cost, conversations),
        "latency_ms_p50": np.where(assistant > 0, latency_p50, np.nan),
        "latency_ms_p95": np.where(assistant > 0, latency_p50 * rng.uniform(1.8, 3.5, (t_count, days)), np.nan),
        "pii_redactions": rng.poisson(user * 0.01),
    }
    assert set(columns) == set(TENANT_DAILY_COLUMNS), set(columns) ^ set(TENANT_DAILY_COLUMNS)
    ids = pl.Series("tenant_id", tenant_ids)
    t_index = np.repeat(np.arange(t_count), days)
    d_index = np.tile(np.arange(days), t_count)
    dates = pl.Series("day", day_numbers.astype(np.int32)).cast(pl.Date)
    tenant_daily = pl.DataFrame(
        [ids.gather(t_index), dates.gather(d_index)]
        + [pl.Series(name, values.reshape(-1), nan_to_null=True) for name, values in columns.items()]
    )

    # intent_daily: 6-10 of the tenant's intents a day, drawn by a Zipf weight of their rank
    pool = np.argsort(rng.random((t_count, len(catalog.intents))), axis=1)[:, :POOL_INTENTS]
    weights = _zipf(POOL_INTENTS, 1.0)
    drawn = _top_k(rng, weights, (t_count, days), 10)
    chosen = np.arange(10)[None, None, :] < rng.integers(6, 11, (t_count, days))[..., None]
    weight_sum = (weights[drawn] * chosen).sum(axis=-1)
    ti, di, slot = np.nonzero(chosen)
    position = drawn[ti, di, slot]
    share = weights[position] / weight_sum[ti, di]
    i_conversations = rng.poisson(conversations[ti, di] * share)
    i_resolved = rng.binomial(i_conversations, traits["resolve"][ti, 0])
    i_handoff = rng.binomial(i_conversations - i_resolved, traits["handoff"][ti, 0])
    i_abandoned = rng.binomial(i_conversations - i_resolved - i_handoff, 0.9)
    i_user = i_conversations + rng.poisson(i_conversations * traits["turns"][ti, 0])
    i_negative = rng.binomial(i_user, traits["negative"][ti, 0])
    intent_names = pl.Series("intent", catalog.intents).gather(pool[ti, position])
    intent_daily = pl.DataFrame(
        [
            ids.gather(ti),
            dates.gather(di),
            intent_names,
            pl.Series("conversations", i_conversations),
            pl.Series("resolved", i_resolved),
            pl.Series("handoff", i_handoff),
            pl.Series("abandoned", i_abandoned),
            pl.Series("deflection_rate", ratio(i_resolved, i_resolved + i_handoff + i_abandoned), nan_to_null=True),
            pl.Series("messages", 2 * i_user - rng.binomial(i_user, 0.03)),
            pl.Series("unanswered", rng.binomial(i_user, traits["unanswered"][ti, 0])),
            pl.Series("feedback_up", rng.binomial(i_user, traits["up"][ti, 0])),
            pl.Series("feedback_down", rng.binomial(i_user, traits["down"][ti, 0])),
            pl.Series("negative_share", ratio(i_negative, i_user), nan_to_null=True),
            pl.Series("cost_usd", np.round(cost[ti, di] * share * rng.gamma(20, 1 / 20, len(ti)), 8)),
        ]
    )

    assert intent_daily.columns == ["tenant_id", "day", "intent", *INTENT_DAILY_COLUMNS], intent_daily.columns
    # unanswered_daily: 3-7 of the tenant's recurring unanswered questions a day
    questions = np.zeros((t_count, POOL_QUESTIONS), dtype=np.int64)
    for t in range(t_count):
        candidates = np.concatenate(
            [np.arange(catalog.offsets[c], catalog.offsets[c] + catalog.counts[c]) for c in pool[t]]
        )
        seen: set[str] = set()
        picked: list[int] = []
        for candidate in rng.permutation(candidates):
            if catalog.normalised[candidate] and catalog.normalised[candidate] not in seen:
                seen.add(catalog.normalised[candidate])
                picked.append(int(candidate))
                if len(picked) == POOL_QUESTIONS:
                    break
        questions[t] = picked
    q_weights = _zipf(POOL_QUESTIONS, 0.8)
    drawn = _top_k(rng, q_weights, (t_count, days), 7)
    chosen = np.arange(7)[None, None, :] < rng.integers(3, 8, (t_count, days))[..., None]
    weight_sum = (q_weights[drawn] * chosen).sum(axis=-1)
    ti, di, slot = np.nonzero(chosen)
    position = drawn[ti, di, slot]
    text_index = questions[ti, position]
    asked = 1 + rng.poisson(np.maximum(columns["unanswered"][ti, di] - 1, 0) * q_weights[position] / weight_sum[ti, di])
    unanswered_daily = pl.DataFrame(
        [
            ids.gather(ti),
            dates.gather(di),
            pl.Series("question", catalog.normalised[text_index].tolist(), dtype=pl.String),
            pl.Series("example", catalog.texts[text_index].tolist(), dtype=pl.String),
            pl.Series("asked", asked),
        ]
    )
    return Store(
        tenant_daily=tenant_daily,
        intent_daily=intent_daily,
        unanswered_daily=unanswered_daily,
        size=size,
        pool=pool,
        questions=questions,
        traits=traits,
        last_conversations=conversations[:, -1],
    )


def make_silver_day(tenant_ids: list[str], store: Store, *, day: date, seed: int, catalog: Catalog):
    """silver/messages of one day in silver's schema: each tenant's conversations of that day (gold's count)."""
    import polars as pl

    from pipelines.transforms.silver import MESSAGES_SCHEMA

    rng = np.random.default_rng(seed)
    counts = np.maximum(store.last_conversations, 0)
    conv_tenant = np.repeat(np.arange(len(tenant_ids)), counts)
    conv_number = np.arange(len(conv_tenant)) - np.repeat(np.cumsum(counts) - counts, counts)
    turns = 1 + rng.poisson(store.traits["turns"][conv_tenant, 0])
    turn_conv = np.repeat(np.arange(len(conv_tenant)), turns)
    turn_index = np.arange(len(turn_conv)) - np.repeat(np.cumsum(turns) - turns, turns)
    tenant = conv_tenant[turn_conv]
    n = len(turn_conv)
    draw = rng.random(n)
    unanswered_share = store.traits["unanswered"][tenant, 0]
    answered = np.where(draw < unanswered_share, 0, np.where(draw < unanswered_share + 0.05, -1, 1))
    # customers' texts: an unanswered question from the tenant's recurring ones, else an utterance of its intents
    weights = _zipf(POOL_INTENTS, 1.0)
    intent_slot = rng.choice(POOL_INTENTS, n, p=weights / weights.sum())
    intent = store.pool[tenant, intent_slot]
    utterance = catalog.offsets[intent] + (rng.random(n) * catalog.counts[intent]).astype(np.int64)
    q_weights = _zipf(POOL_QUESTIONS, 0.8)
    question = store.questions[tenant, rng.choice(POOL_QUESTIONS, n, p=q_weights / q_weights.sum())]
    user_text = np.where(answered == 0, question, utterance)
    topics = np.array([name.replace("_", " ") for name in catalog.intents], dtype=object)
    answer_text = [
        f"About {topic}: open the app, go to Help and choose '{topic.capitalize()}'; the steps there cover it."
        for topic in topics[intent]
    ]
    start_s = rng.uniform(0, 86_000, len(conv_tenant))[turn_conv] + 40.0 * turn_index
    midnight = np.datetime64(day.isoformat(), "us")
    # two rows a turn: the customer's message, then the answer
    rows = 2 * n
    is_user = np.tile([True, False], n)
    tiers = np.array(["cache", "kb", "local", "llm"], dtype=object)
    tier = tiers[rng.choice(4, n, p=[0.08, 0.42, 0.05, 0.45])]
    offsets_us = ((np.repeat(start_s, 2) + np.tile([0.0, 2.0], n)) * 1e6).astype(np.int64)
    created = midnight + offsets_us.astype("timedelta64[us]")
    texts = np.empty(rows, dtype=object)
    texts[0::2] = catalog.texts[user_text]
    texts[1::2] = answer_text
    answered_values = np.where(answered == 1, True, np.where(answered == 0, False, None))
    answered_rows = np.empty(rows, dtype=object)
    answered_rows[0::2] = answered_values
    confident = np.empty(rows, dtype=object)
    confident[1::2] = answered_values
    conv_ids = [f"c_{t:04x}{c:06x}" for t, c in zip(conv_tenant, conv_number, strict=True)]
    frame = pl.DataFrame(
        {
            "tenant_id": pl.Series(tenant_ids).gather(np.repeat(tenant, 2)),
            "conversation_id": pl.Series(conv_ids).gather(np.repeat(turn_conv, 2)),
            "seq": (2 * np.repeat(turn_index, 2) + np.tile([0, 1], n)).astype(np.int32),
            "role": np.where(is_user, "user", "assistant"),
            "created_at": created,
            "text": pl.Series(texts.tolist(), dtype=pl.String),
            "tier": pl.Series(np.where(is_user, None, np.repeat(tier, 2)).tolist(), dtype=pl.String),
            "latency_ms": np.where(is_user, np.nan, rng.gamma(4, 150, rows)),
            "intent": pl.Series(
                np.where(is_user, np.array(catalog.intents, dtype=object)[np.repeat(intent, 2)], None).tolist(),
                dtype=pl.String,
            ),
            "answered": pl.Series(answered_rows.tolist(), dtype=pl.Boolean),
            "confident": pl.Series(confident.tolist(), dtype=pl.Boolean),
        }
    ).with_columns(
        message_id=pl.format("m_{}{}", pl.col("conversation_id").str.slice(2), pl.col("seq")),
        event_id=pl.format("e_{}{}", pl.col("conversation_id").str.slice(2), pl.col("seq")),
        channel=pl.lit("web"),
        created_at=pl.col("created_at").dt.replace_time_zone("UTC"),
        date=pl.lit(day),
        chars=pl.col("text").str.len_chars(),
        latency_ms=pl.when(pl.col("role") == "assistant").then(pl.col("latency_ms")),
    )
    frame = frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in MESSAGES_SCHEMA.items()
        ]
    )
    return frame.sort("tenant_id", "conversation_id", "created_at")


def make_usage(tenant_ids: list[str], store: Store, full: list[int], *, seed: int, catalog: Catalog):
    """Usage rows (one per answer and per conversation summary, from tenant_daily's counts) over the whole period:
    every row of the tenants at `full`, a FILLER_SHARE sample of every other tenant's, all in time order; and
    routing_policy rows for the four most frequent intents of the `full` tenants."""
    import polars as pl

    rng = np.random.default_rng(seed)
    daily = store.tenant_daily
    t_count, days = len(tenant_ids), daily.height // len(tenant_ids)
    tiers = ("cache", "kb", "local", "llm", "summary")
    counts = np.stack(
        [daily[f"answered_by_{tier}"].to_numpy() for tier in tiers[:4]] + [daily["conversations"].to_numpy()],
        axis=1,
    ).reshape(t_count, days, len(tiers))
    keep = np.full((t_count, 1, 1), FILLER_SHARE)
    keep[full] = 1.0
    counts = rng.binomial(counts, keep)
    flat = counts.reshape(-1)
    cell = np.repeat(np.arange(len(flat)), flat)  # (tenant, day, tier) of each row
    tenant, day_of, tier_of = cell // (days * len(tiers)), (cell // len(tiers)) % days, cell % len(tiers)
    n = len(cell)
    llm = daily["answered_by_llm"].to_numpy().reshape(t_count, days)
    per_llm = {
        column: daily[column].to_numpy().reshape(t_count, days) / np.maximum(llm, 1)
        for column in ("input_tokens", "output_tokens", "cost_usd")
    }
    is_llm, is_summary = tier_of == 3, tier_of == 4
    weights = _zipf(POOL_INTENTS, 1.0)
    slot = rng.choice(POOL_INTENTS, n, p=weights / weights.sum())
    routed = (slot < 4) & ~is_summary & np.isin(tenant, full)
    first = daily["day"][0]
    micros = ((day_of * 86_400 + rng.uniform(0, 86_400, n)) * 1e6).astype(np.int64)
    usage = pl.DataFrame(
        {
            "at": np.datetime64(first.isoformat(), "us") + micros.astype("timedelta64[us]"),
            "tenant_id": pl.Series(tenant_ids).gather(tenant),
            "tier": pl.Series(list(tiers)).gather(tier_of),
            "provider": pl.Series(np.where(is_llm, "budget", None).tolist(), dtype=pl.String),
            "model": pl.Series(np.where(is_llm, "small", None).tolist(), dtype=pl.String),
            "input_tokens": np.where(is_llm, per_llm["input_tokens"][tenant, day_of], 400 * is_summary),
            "output_tokens": np.where(is_llm, per_llm["output_tokens"][tenant, day_of], 60 * is_summary),
            "cost_usd": np.round(np.where(is_llm, per_llm["cost_usd"][tenant, day_of], 0.0001 * is_summary), 8),
            "latency_ms": rng.gamma(4, 150, n),
            "cache_hit": tier_of == 0,
            "intent": pl.Series(catalog.intents).gather(store.pool[tenant, slot]),
            "routed_by": np.where(routed, np.where(rng.random(n) < 0.1, "explore", "intent"), "policy"),
        }
    ).with_columns(
        at=pl.col("at").dt.replace_time_zone("UTC"),
        input_tokens=pl.col("input_tokens").cast(pl.Int64),
        output_tokens=pl.col("output_tokens").cast(pl.Int64),
        intent=pl.when(pl.col("tier") != "summary").then(pl.col("intent")),
        outcome=pl.lit("ok"),
    )
    routes = [
        {
            "tenant_id": tenant_ids[t],
            "intent": catalog.intents[store.pool[t, rank]],
            "tier": "kb",
            "explore_share": 0.1,
            "samples": 200,
            "quality": 0.8,
            "baseline_tier": "premium/large",
            "baseline_quality": 0.9,
            "baseline_cost_usd": 0.003,
            "route_cost_usd": 0.0,
            "answers_per_day": float(store.size[t] * 2 * weights[rank] / weights.sum()),
        }
        for t in full
        for rank in range(4)
    ]
    return usage.sort("at"), routes


# ---------------------------------------------------------------------------------------------------------------
# Setup in PostgreSQL


async def create_tenants(url: str, count: int) -> list[tuple[str, str, str]]:
    """(tenant id, API key, role) of `count` real tenants, one key each."""
    import psycopg
    from psycopg.rows import dict_row

    from core import tenancy
    from core.schemas import Role

    made = []
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn, conn.transaction():
        for n in range(count):
            tenant = await tenancy.create_tenant(conn, name=f"Dashboard Bank {n:04d}", actor="bench")
            role = Role.OWNER if n % OWNER_EVERY == 0 else Role.VIEWER
            _, key = await tenancy.create_api_key(conn, tenant_id=tenant.id, role=role, name="dashboard", actor="bench")
            made.append((tenant.id, key, str(role)))
    return made


def copy_frame(conn, table: str, frame) -> float:
    """COPY the frame (its columns named as the table's) in CSV chunks with the table's primary key dropped, then
    the key rebuilt (a sort instead of millions of random inserts; the heap's order is the frame's); seconds."""
    started = time.perf_counter()
    name, definition = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
        (table,),
    ).fetchone()
    conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    columns = ", ".join(frame.columns)
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        for start in range(0, frame.height, COPY_CHUNK):
            buffer = io.BytesIO()
            frame.slice(start, COPY_CHUNK).write_csv(buffer, include_header=False)
            copy.write(buffer.getvalue())
    conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    return time.perf_counter() - started


def table_sizes(conn, tables: tuple[str, ...]) -> dict[str, tuple[int, float, float]]:
    """rows, heap MB, index MB of each table."""
    sizes = {}
    for table in tables:
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        heap, indexes = conn.execute(
            "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)", (table, table)
        ).fetchone()
        sizes[table] = (rows, heap / 2**20, indexes / 2**20)
    return sizes


# ---------------------------------------------------------------------------------------------------------------
# The request phase


def _round(value):
    return None if value is None else round(float(value), 6)


def summary(name: str, figures) -> tuple:
    """What the API answered and what the direct call returned must agree on (JSON or Python values alike)."""
    if name == "overview":
        kpis = figures["kpis"]
        return kpis["conversations"], kpis["unanswered"], _round(kpis["cost_usd"]), _round(kpis["deflection_rate"])
    if name.startswith("timeseries"):
        points = figures["points"] if isinstance(figures, dict) else figures
        return len(points), _round(sum(p["value"] or 0 for p in points))
    if name == "intents":
        rows = figures["intents"] if isinstance(figures, dict) else figures
        return tuple((row["intent"], row["conversations"]) for row in rows)
    if name == "unanswered":
        rows = figures["questions"] if isinstance(figures, dict) else figures
        return tuple((row["question"], row["asked"]) for row in rows)
    return _round(figures["cost_usd"]), len(figures["daily"]), _round(figures["baseline"]["cost_usd"])


async def direct(conn, name: str, params: dict[str, str], *, tenant_id: str, span, baseline):
    from core import analytics

    if name == "overview":
        return await analytics.overview(conn, tenant_id=tenant_id, span=span)
    if name.startswith("timeseries"):
        return await analytics.timeseries(
            conn, tenant_id=tenant_id, metric=params["metric"], interval=params["interval"], span=span
        )
    if name == "intents":
        return await analytics.top_intents(conn, tenant_id=tenant_id, span=span, limit=10)
    if name == "unanswered":
        return await analytics.unanswered(conn, tenant_id=tenant_id, span=span, limit=10)
    return await analytics.costs(conn, tenant_id=tenant_id, span=span, baseline=baseline)


@dataclass
class Timings:
    api: dict[str, list[float]] = field(default_factory=dict)  # ms
    direct: dict[str, list[float]] = field(default_factory=dict)
    response_bytes: dict[str, list[int]] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    checked: int = 0
    # API minus direct, ms: a load's first request (its key's first use in a minute) and the others
    overhead: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})

    def add(self, name: str, api_ms: float, direct_ms: float, size: int, *, first: bool) -> None:
        self.overhead[first].append(api_ms - direct_ms)
        self.api.setdefault(name, []).append(api_ms)
        self.direct.setdefault(name, []).append(direct_ms)
        self.response_bytes.setdefault(name, []).append(size)


async def one(client, conn, name, path, params, *, tenant, span, baseline, api_first: bool, first: bool, timings):
    tenant_id, key, _ = tenant
    query = {"from": span.start.isoformat(), "to": span.end.isoformat(), **params}
    headers = {"Authorization": f"Bearer {key}"}

    async def call_api():
        started = time.perf_counter()
        response = await client.get(path, params=query, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{name}: HTTP {response.status_code}: {response.text[:300]}")
        return elapsed, response

    async def call_direct():
        started = time.perf_counter()
        figures = await direct(conn, name, params, tenant_id=tenant_id, span=span, baseline=baseline)
        return (time.perf_counter() - started) * 1000, figures

    if api_first:
        (api_ms, response), (direct_ms, figures) = await call_api(), await call_direct()
    else:
        (direct_ms, figures), (api_ms, response) = await call_direct(), await call_api()
    if timings is not None:
        timings.add(name, api_ms, direct_ms, len(response.content), first=first)
        timings.checked += 1
        if summary(name, response.json()) != summary(name, figures):
            timings.mismatches.append(f"{name} of {tenant_id}")


async def measure(
    base_url: str, url: str, tenants, loads, usage_tenants, *, span, baseline, seed: int, deadline: float
) -> tuple[Timings, Timings, dict[str, list[tuple[float, float]]], int]:
    import httpx
    import psycopg
    from psycopg.rows import dict_row

    rng = np.random.default_rng(seed)
    warm, measured = Timings(), Timings()
    by_usage: dict[str, list[tuple[float, float]]] = {}
    done = 0
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client,
        await psycopg.AsyncConnection.connect(url, row_factory=dict_row, autocommit=True) as conn,
    ):
        for phase, chosen in (("warm", loads[0]), ("measured", loads[1])):
            for n, t in enumerate(chosen):
                if time.perf_counter() > deadline:
                    break
                for k, e in enumerate(rng.permutation(len(ENDPOINTS))):
                    name, path, params = ENDPOINTS[e]
                    await one(
                        client,
                        conn,
                        name,
                        path,
                        params,
                        tenant=tenants[t],
                        span=span,
                        baseline=baseline,
                        api_first=n % 2 == 0,
                        first=k == 0,
                        timings=warm if phase == "warm" else measured,
                    )
                done += phase == "measured"
        name, path, params = ENDPOINTS[-1]
        for t in usage_tenants:
            tenant_id = tenants[t][0]
            runs = Timings()
            for n in range(USAGE_REQUESTS + 1):
                if time.perf_counter() > deadline:
                    break
                await one(
                    client,
                    conn,
                    name,
                    path,
                    params,
                    tenant=tenants[t],
                    span=span,
                    baseline=baseline,
                    api_first=n % 2 == 0,
                    first=False,
                    timings=runs if n >= 1 else warm,
                )
            by_usage[tenant_id] = list(zip(runs.api.get(name, []), runs.direct.get(name, []), strict=True))
            measured.mismatches += runs.mismatches
            measured.checked += runs.checked
    return warm, measured, by_usage, done


async def explain_queries(url: str, log_path: Path, tenant, usage_tenant, *, span, baseline) -> str:
    """auto_explain's plans (ANALYZE, BUFFERS) of one call of every dashboard query, from the server's log."""
    import psycopg
    from psycopg.rows import dict_row

    offset = log_path.stat().st_size
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row, autocommit=True) as conn:
        for statement in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_buffers = on",
        ):
            await conn.execute(statement)
        for name, _, params in ENDPOINTS:
            await direct(conn, name, params, tenant_id=tenant[0], span=span, baseline=baseline)
        if usage_tenant is not None:
            await direct(conn, "costs", {}, tenant_id=usage_tenant[0], span=span, baseline=baseline)
    time.sleep(0.5)
    return _plans(log_path.read_bytes()[offset:].decode(errors="replace"))


def _plans(logged: str) -> str:
    """auto_explain's log lines with each query's text cut short."""
    return "\n".join(
        line[:200] + " ..." if "Query Text:" in line and len(line) > 200 else line for line in logged.splitlines()
    )


# ---------------------------------------------------------------------------------------------------------------
# The server


def start_server(tmp: Path, url: str, providers: Path) -> tuple[subprocess.Popen, str, float, Path]:
    import httpx

    port = free_port()
    stderr_path = tmp / "server.stderr"
    env = {
        **os.environ,
        "PARLEY_DATA_DIR": str(tmp / "data"),
        "PARLEY_POSTGRES_URL": url,
        "PARLEY_PROVIDERS_FILE": str(providers),
        "PARLEY_LOG_LEVEL": "warning",
    }
    argv = [
        sys.executable, "-m", "uvicorn", "analytics_api.app:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log", "--no-server-header",
    ]  # fmt: skip
    started = time.perf_counter()
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() - started < START_TIMEOUT_S:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}: {stderr_path.read_text()[-2000:]}")
            try:
                if client.get(f"{base}/v1/analytics/openapi.json").status_code == 200:
                    return process, base, time.perf_counter() - started, stderr_path
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"the server did not answer within {START_TIMEOUT_S} s")


# ---------------------------------------------------------------------------------------------------------------
# The export


READS = (
    ("gold/tenant_daily", None),
    ("gold/intent_daily", None),
    ("silver/messages", ["tenant_id", "date", "seq", "role", "text", "answered"]),  # what export reads of silver
)


def read_part(lake, day: date) -> dict[str, tuple[float, int]]:
    """The anchor: the three tables read as export reads them (Lake.scan, polars' Delta reader, the day filter
    pushed down), alone (seconds, rows)."""
    import polars as pl

    read = {}
    for table, columns in READS:
        started = time.perf_counter()
        frame = lake.scan(table).filter(pl.col("date").is_in([day]))
        rows = (frame.select(columns) if columns else frame).collect().height
        read[table] = (time.perf_counter() - started, rows)
    return read


def read_arrow(lake, day: date) -> dict[str, tuple[float, int]]:
    """Beside the anchor: the same reads through Arrow datasets (Lake.dataset + to_table), the reader the export
    used before: it opens every file of a file-per-tenant table to filter a day."""
    import pyarrow.dataset as pds

    read = {}
    for table, columns in READS:
        started = time.perf_counter()
        rows = lake.dataset(table).to_table(filter=pds.field("date").isin([day]), columns=columns).num_rows
        read[table] = (time.perf_counter() - started, rows)
    return read


def stored_counts(conn, day: date) -> dict[str, tuple[int, int]]:
    """(rows, sum of a count) per store table for the day."""
    counts = {}
    for table, column in (
        ("tenant_daily", "conversations"),
        ("intent_daily", "conversations"),
        ("unanswered_daily", "asked"),
    ):
        rows, total = conn.execute(
            f"SELECT count(*), coalesce(sum({column}), 0) FROM {table} WHERE day = %s", (day,)
        ).fetchone()
        counts[table] = (rows, int(total))
    return counts


# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=TENANTS)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="dashboard loads of 7 requests each")
    parser.add_argument("--explain", action="store_true", help="print the queries' plans (auto_explain)")
    args = parser.parse_args(argv)
    tenants_n = max(10, min(args.tenants, 5_000))
    days = max(2, min(args.days, 731))
    loads_n = max(1, min(args.requests, 2_000))
    began = time.perf_counter()
    print(
        f"dashboard: the analytics API over {days} days of daily facts for {tenants_n:,} tenants (embedded "
        f"PostgreSQL), and export_gold of one day for them"
    )
    print(f"  {machine_line()}")
    print(f"  {code_line()}")
    with tempfile.TemporaryDirectory(prefix="parley-bench-dashboard-") as folder:
        tmp = Path(folder)
        run(tmp, tenants_n=tenants_n, days=days, loads_n=loads_n, explain=args.explain)
    print(f"  total runtime {time.perf_counter() - began:.0f} s; after the run: {machine_line()}")


def _ms(values: list[float]) -> str:
    p50, p95, p99 = (percentile(values, q) for q in (50, 95, 99))
    return f"p50 {p50:6.1f}  p95 {p95:6.1f}  p99 {p99:6.1f} ms"


def run(tmp: Path, *, tenants_n: int, days: int, loads_n: int, explain: bool) -> None:
    import polars as pl
    import psutil
    import psycopg

    from analytics_api.app import most_expensive
    from core.analytics import DateRange
    from core.db import EmbeddedPostgres, migrate
    from core.lake import GOLD_INTENT_DAILY, GOLD_TENANT_DAILY, SILVER_MESSAGES, Lake
    from core.llm.catalog import load_catalog
    from pipelines.defs.metrics.assets import export_gold
    from pipelines.transforms.gold import INTENT_DAILY_SCHEMA, TENANT_DAILY_SCHEMA, unanswered_questions

    pgdata = tmp / "pgdata"
    server = EmbeddedPostgres(pgdata)
    url = server.start()
    process = None
    try:
        started = time.perf_counter()
        asyncio.run(migrate(url))
        with psycopg.connect(url, autocommit=True) as conn:
            settings = dict(
                conn.execute(
                    "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
                    "('server_version', 'shared_buffers', 'work_mem', 'effective_cache_size', 'synchronous_commit')"
                ).fetchall()
            )
        tenants = asyncio.run(create_tenants(url, tenants_n))
        tenant_ids = [t[0] for t in tenants]
        log(
            f"PostgreSQL {settings['server_version']} (embedded defaults: shared_buffers {settings['shared_buffers']}, "
            f"work_mem {settings['work_mem']}, effective_cache_size {settings['effective_cache_size']}, "
            f"synchronous_commit {settings['synchronous_commit']}); migrated, {tenants_n:,} tenants with one key "
            f"each ({tenants_n // OWNER_EVERY + (tenants_n % OWNER_EVERY > 0)} owner, the rest viewer) in "
            f"{time.perf_counter() - started:.1f} s"
        )

        started = time.perf_counter()
        catalog = banking77()
        store = make_store(tenant_ids, days=days, end=END, seed=SEED, catalog=catalog)
        order = np.argsort(store.size)
        usage_rows_of = sorted({int(order[min(len(order) - 1, int(q * len(order)))]) for q in USAGE_QUANTILES})
        usage, routes = make_usage(tenant_ids, store, usage_rows_of, seed=SEED + 1, catalog=catalog)
        silver = make_silver_day(tenant_ids, store, day=END, seed=SEED + 2, catalog=catalog)
        expected_unanswered = unanswered_questions(
            silver.select("tenant_id", "date", "seq", "role", "text", "answered")
        )
        log(
            f"simulated {store.tenant_daily.height:,} tenant_daily, {store.intent_daily.height:,} intent_daily, "
            f"{store.unanswered_daily.height:,} unanswered_daily, {usage.height:,} usage rows and {silver.height:,} "
            f"silver messages in {time.perf_counter() - started:.1f} s"
        )

        started = time.perf_counter()
        copied = {}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            conn.execute("SET maintenance_work_mem = '512MB'")
            for table, frame in (
                ("tenant_daily", store.tenant_daily),
                ("intent_daily", store.intent_daily),
                ("unanswered_daily", store.unanswered_daily),
            ):
                key = [c for c in ("day", "tenant_id", "intent", "question") if c in frame.columns]
                copied[table] = copy_frame(conn, table, frame.sort(key))
            copied["usage"] = copy_frame(conn, "usage", usage)
            with conn.cursor() as cursor:
                columns = list(routes[0])
                cursor.executemany(
                    f"INSERT INTO routing_policy ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                    [tuple(route[c] for c in columns) for route in routes],
                )
            vacuum_started = time.perf_counter()
            for table in ("tenant_daily", "intent_daily", "unanswered_daily", "usage", "routing_policy"):
                conn.execute(f"VACUUM (ANALYZE) {table}")
            vacuumed = time.perf_counter() - vacuum_started
            # As the metrics/daily asset does after an export: the roll-ups the costs endpoint reads.
            refresh_started = time.perf_counter()
            conn.execute("REFRESH MATERIALIZED VIEW routing_daily")
            conn.execute("VACUUM (ANALYZE) routing_daily")
            refreshed = time.perf_counter() - refresh_started
            sizes = table_sizes(conn, ("tenant_daily", "intent_daily", "unanswered_daily", "usage"))
        log(
            "COPY in day order: "
            + ", ".join(f"{table} {seconds:.1f} s" for table, seconds in copied.items())
            + f"; VACUUM ANALYZE {vacuumed:.1f} s; routing_daily refreshed {refreshed:.1f} s; total "
            + f"{time.perf_counter() - started:.1f} s"
        )
        for table, (rows, heap, indexes) in sizes.items():
            log(f"  {table:<17} {rows:>11,} rows  {heap:7.1f} MB heap  {indexes:7.1f} MB indexes")

        started = time.perf_counter()
        lake = Lake(tmp / "lake")
        gold_tenant = store.tenant_daily.rename({"day": "date"}).select(
            [pl.col(name).cast(dtype) for name, dtype in TENANT_DAILY_SCHEMA.items()]
        )
        gold_intent = store.intent_daily.rename({"day": "date"}).select(
            [pl.col(name).cast(dtype) for name, dtype in INTENT_DAILY_SCHEMA.items()]
        )
        lake.append(GOLD_TENANT_DAILY, gold_tenant.sort("tenant_id", "date").to_arrow())
        lake.append(GOLD_INTENT_DAILY, gold_intent.sort("tenant_id", "date", "intent").to_arrow())
        lake.append(SILVER_MESSAGES, silver.to_arrow())
        lake_files = {}
        for spec in (GOLD_TENANT_DAILY, GOLD_INTENT_DAILY, SILVER_MESSAGES):
            actions = lake.table(spec).get_add_actions(flatten=True)
            lake_files[spec.name] = (
                sum(actions.column("num_records").to_pylist()),
                actions.num_rows,
                sum(actions.column("size_bytes").to_pylist()) / 2**20,
            )
        log(
            f"lake written in {time.perf_counter() - started:.1f} s: "
            + "; ".join(
                f"{name} {rows:,} rows in {files:,} files, {mb:.1f} MB"
                for name, (rows, files, mb) in lake_files.items()
            )
        )
        del store.intent_daily, store.unanswered_daily

        providers = tmp / "providers.yaml"
        providers.write_text(PROVIDERS)
        baseline = most_expensive(load_catalog(providers))
        span = DateRange(END - timedelta(days=RANGE_DAYS - 1), END)
        process, base_url, ready_s, stderr_path = start_server(tmp, url, providers)
        log(f"server: uvicorn analytics_api.app:create_app in its own process, one worker; up in {ready_s:.1f} s")

        rng = np.random.default_rng(SEED + 3)
        candidates = np.array([t for t in range(tenants_n) if t not in usage_rows_of])
        sample = rng.permutation(candidates)
        if len(sample) < WARM_UP_LOADS + loads_n:
            sample = np.concatenate([sample, rng.choice(candidates, WARM_UP_LOADS + loads_n - len(sample))])
        loads = (sample[:WARM_UP_LOADS].tolist(), sample[WARM_UP_LOADS : WARM_UP_LOADS + loads_n].tolist())
        server_process = psutil.Process(process.pid)
        cpu_before = sum(server_process.cpu_times()[:2])
        started = time.perf_counter()
        warm, measured, by_usage, done = asyncio.run(
            measure(
                base_url,
                url,
                tenants,
                loads,
                usage_rows_of,
                span=span,
                baseline=baseline,
                seed=SEED + 4,
                deadline=started + MEASURE_BUDGET_S,
            )
        )
        measure_s = time.perf_counter() - started
        api_requests = sum(len(v) for v in warm.api.values()) + sum(len(v) for v in measured.api.values())
        api_requests += sum(len(v) for v in by_usage.values())
        server_cpu_ms = (sum(server_process.cpu_times()[:2]) - cpu_before) * 1000 / max(api_requests, 1)
        plans = None
        if explain:
            mid = tenants[loads[1][0]]
            big = tenants[max(usage_rows_of, key=lambda t: store.size[t])] if usage_rows_of else None
            plans = asyncio.run(explain_queries(url, pgdata / "log", mid, big, span=span, baseline=baseline))
        stop(process)
        server_log = stderr_path.read_text(errors="replace").strip()
        process = None

        # -- the export
        lake_dsn = url
        gold_day_tenant = gold_tenant.filter(pl.col("date") == END)
        gold_day_intent = gold_intent.filter(pl.col("date") == END)
        expected = {
            "tenant_daily": (gold_day_tenant.height, int(gold_day_tenant["conversations"].sum())),
            "intent_daily": (gold_day_intent.height, int(gold_day_intent["conversations"].sum())),
            "unanswered_daily": (expected_unanswered.height, int(expected_unanswered["asked"].sum())),
        }
        with psycopg.connect(url, autocommit=True) as conn:
            before = stored_counts(conn, END)
        export_s, anchors, arrow_reads, results, checks = [], [], [], [], []
        export_deadline = time.perf_counter() + EXPORT_BUDGET_S
        for n in range(EXPORT_RUNS):
            if n and time.perf_counter() > export_deadline:
                break
            if n % 2 == 0:  # the reads alone before the export on even runs, after it on odd ones
                anchors.append(read_part(lake, END))
                arrow_reads.append(read_arrow(lake, END))
            started = time.perf_counter()
            results.append(export_gold(lake, lake_dsn, days=[END]))
            export_s.append(time.perf_counter() - started)
            if n % 2 == 1:
                anchors.append(read_part(lake, END))
                arrow_reads.append(read_arrow(lake, END))
            with psycopg.connect(url, autocommit=True) as conn:
                checks.append(stored_counts(conn, END))
        export_plans = None
        if explain:
            with psycopg.connect(url, autocommit=True) as conn:
                database = conn.execute("SELECT current_database()").fetchone()[0]
                offset = (pgdata / "log").stat().st_size
                for setting in (
                    "session_preload_libraries = 'auto_explain'",
                    "auto_explain.log_min_duration = 0",
                    "auto_explain.log_analyze = on",
                    "auto_explain.log_buffers = on",
                ):
                    conn.execute(f'ALTER DATABASE "{database}" SET {setting}')
                try:
                    export_gold(lake, lake_dsn, days=[END])
                finally:
                    conn.execute(f'ALTER DATABASE "{database}" RESET ALL')
                time.sleep(0.5)
                export_plans = _plans((pgdata / "log").read_bytes()[offset:].decode(errors="replace"))
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        server.stop()

    report(
        measured=measured,
        warm=warm,
        by_usage=by_usage,
        usage=usage,
        tenants=tenants,
        usage_rows_of=usage_rows_of,
        store=store,
        done=done,
        loads_n=loads_n,
        measure_s=measure_s,
        server_cpu_ms=server_cpu_ms,
        server_log=server_log,
        span=span,
        export_s=export_s,
        anchors=anchors,
        arrow_reads=arrow_reads,
        results=results,
        checks=checks,
        expected=expected,
        before=before,
        lake_files=lake_files,
        plans=plans,
        export_plans=export_plans,
    )


def report(**r) -> None:
    measured: Timings = r["measured"]
    span = r["span"]
    print(
        f"  dashboard API: {r['done']} loads of {len(ENDPOINTS)} requests (of {r['loads_n']} asked; "
        f"{WARM_UP_LOADS} untimed loads first), each from a different random tenant with its own key, over "
        f"{span.start} .. {span.end} ({span.days} days), sequential, {r['measure_s']:.0f} s in all"
    )
    print(f"    {'endpoint':<30} {'API (HTTP, uvicorn process)':<38} {'direct call (anchor)':<38} ratio p50/p95  resp")
    everything = []
    worst = ("", 0.0)
    for name, _, _ in ENDPOINTS:
        api, anchor = measured.api.get(name, []), measured.direct.get(name, [])
        if not api:
            continue
        everything += api
        p95 = percentile(api, 95)
        if p95 > worst[1]:
            worst = (name, p95)
        kb = statistics.mean(measured.response_bytes[name]) / 1024
        print(
            f"    {name:<30} {_ms(api):<38} {_ms(anchor):<38} "
            f"{percentile(api, 50) / percentile(anchor, 50):4.1f}x/{p95 / percentile(anchor, 95):4.1f}x "
            f"{kb:5.1f} KB"
        )
    print(f"    {'all requests':<30} {_ms(everything)}  ({len(everything):,} requests)")
    overview_api, overview_direct = measured.api.get("overview", []), measured.direct.get("overview", [])
    if overview_api:
        print(
            f"    anchor: core.analytics.overview called directly on a psycopg connection, same tenants: p50 "
            f"{percentile(overview_direct, 50):.1f} ms, p95 {percentile(overview_direct, 95):.1f} ms; API/anchor "
            f"p50 {percentile(overview_api, 50) / percentile(overview_direct, 50):.2f}x, p95 "
            f"{percentile(overview_api, 95) / percentile(overview_direct, 95):.2f}x"
        )
    print(
        f"    server process CPU per request {r['server_cpu_ms']:.2f} ms (uvicorn process only); API and direct "
        f"figures agree on {measured.checked - len(measured.mismatches):,} of {measured.checked:,} requests"
        + (f"; MISMATCHES: {', '.join(measured.mismatches[:5])}" if measured.mismatches else "")
    )
    first, rest = measured.overhead[True], measured.overhead[False]
    if first and rest:
        print(
            f"    API minus direct call, median: {statistics.median(rest):.1f} ms; on a load's first request (the "
            f"key's first use in a minute: auth also UPDATEs last_used_at, a commit) {statistics.median(first):.1f} ms"
        )
    if r["server_log"]:
        print("    server stderr: " + r["server_log"][-600:].replace("\n", "\n      "))
    usage = r["usage"]
    if r["by_usage"]:
        print(
            f"  costs for tenants with every usage row of the range (the realised savings read their routing_daily "
            f"roll-up; beside the goal; the other tenants have {FILLER_SHARE:.0%} of theirs):"
        )
        counts = dict(usage.group_by("tenant_id").len().iter_rows())
        size_rank = np.argsort(np.argsort(r["store"].size))
        for t in sorted(r["usage_rows_of"], key=lambda t: r["store"].size[t]):
            tenant_id = r["tenants"][t][0]
            pairs = r["by_usage"].get(tenant_id, [])
            if not pairs:
                continue
            api, anchor = [p[0] for p in pairs], [p[1] for p in pairs]
            print(
                f"    tenant at size quantile {size_rank[t] / len(size_rank):.2f} ({r['store'].size[t]:.0f} "
                f"conversations a day, {counts.get(tenant_id, 0):,} usage rows in the range): API {_ms(api)}; "
                f"direct {_ms(anchor)} ({len(pairs)} requests)"
            )
    if r["plans"]:
        print("  plans (auto_explain, EXPLAIN ANALYZE BUFFERS) of one call of each dashboard query:")
        print("    " + r["plans"].strip().replace("\n", "\n    "))

    # export
    lake_files = r["lake_files"]
    print(
        f"  export: export_gold(lake, dsn, days=[{END}]) against the store above; lake: "
        + "; ".join(f"{n} {rows:,} rows / {files:,} files / {mb:.1f} MB" for n, (rows, files, mb) in lake_files.items())
    )
    expected = r["expected"]
    print(
        "    gold/silver for the day: "
        + ", ".join(f"{table} {rows:,} rows (sum {total:,})" for table, (rows, total) in expected.items())
        + "; the store held before: "
        + ", ".join(f"{table} {rows:,}" for table, (rows, _) in r["before"].items())
    )
    ok = all(check == expected for check in r["checks"])
    for n, (seconds, result, check) in enumerate(zip(r["export_s"], r["results"], r["checks"], strict=True), 1):
        print(
            f"    run {n}: export {seconds:.2f} s (returned {result}); store now "
            + ", ".join(f"{table} {rows:,}" for table, (rows, _) in check.items())
            + (" = gold" if check == expected else " != gold")
        )
    for label, reads in (
        ("anchor, the read part alone (Lake.scan, the day filter, as export reads)", r["anchors"]),
        ("beside it, the same reads through Arrow datasets (the export's earlier reader)", r["arrow_reads"]),
    ):
        medians = {table: statistics.median(read[table][0] for read in reads) for table, _ in READS}
        rows = {table: reads[0][table][1] for table, _ in READS}
        print(
            f"    {label}: median {statistics.median(sum(s for s, _ in read.values()) for read in reads):.2f} s ("
            + ", ".join(f"{table} {medians[table]:.2f} s, {rows[table]:,} rows" for table, _ in READS)
            + ")"
        )
    if r["export_plans"]:
        print("  plans of the export's statements (auto_explain):")
        print("    " + r["export_plans"].strip().replace("\n", "\n    "))

    worst_name, worst_p95 = worst
    mismatched = bool(measured.mismatches)
    verdict = "PASS" if worst_p95 <= GOAL_P95_MS and not mismatched else "FAIL"
    usage_note = ""
    if r["by_usage"]:
        usage_p95 = max(percentile([p[0] for p in pairs], 95) for pairs in r["by_usage"].values() if pairs)
        usage_note = f"; beside the goal, costs of a tenant with its usage rows, worst p95 {usage_p95:.1f} ms"
    print(
        f"goal: dashboard API P95 <= {GOAL_P95_MS:.0f} ms over {span.days} days for {len(r['tenants']):,} tenants: "
        f"{verdict} (worst endpoint {worst_name} p95 {worst_p95:.1f} ms; all requests p95 "
        f"{percentile(everything, 95):.1f} ms; anchor, overview called directly, p95 "
        f"{percentile(overview_direct, 95):.1f} ms; ratio API/anchor on overview p95 "
        f"{percentile(overview_api, 95) / percentile(overview_direct, 95):.2f}x"
        + (", FIGURES DISAGREE" if mismatched else "")
        + usage_note
        + ")"
    )
    export_median = statistics.median(r["export_s"])
    read_median = statistics.median(sum(s for s, _ in read.values()) for read in r["anchors"])
    arrow_median = statistics.median(sum(s for s, _ in read.values()) for read in r["arrow_reads"])
    verdict = "PASS" if export_median <= GOAL_EXPORT_S and ok else "FAIL"
    print(
        f"goal: export of one day for {len(r['tenants']):,} tenants <= {GOAL_EXPORT_S:.0f} s: {verdict} (median "
        f"{export_median:.2f} s of {len(r['export_s'])} runs, max {max(r['export_s']):.2f} s; anchor, the read part "
        f"alone, median {read_median:.2f} s; ratio {export_median / read_median:.1f}x; the same reads through Arrow "
        f"datasets, median {arrow_median:.2f} s" + ("" if ok else "; STORED ROWS DIFFER FROM GOLD") + ")"
    )


if __name__ == "__main__":
    main()
