"""Enrichment assets: message_sentiment, conversation_summaries, conversation_topics (transforms/enrich.py)."""

import dagster as dg
import polars as pl
import pyarrow.dataset as pds

from core.lake import (
    CONVERSATION_SUMMARIES,
    CONVERSATION_TOPICS,
    MESSAGE_SENTIMENT,
    SILVER_CONVERSATIONS,
    SILVER_MESSAGES,
    Lake,
    TableSpec,
)
from models.sentiment import SentimentScorer
from pipelines.incremental import changed_tenants, tenant_chunks
from pipelines.keys import CONVERSATIONS, MESSAGES, SENTIMENT, SUMMARIES, TOPICS
from pipelines.llm_summaries import Candidate, LlmSummarizer
from pipelines.resources import LakeResource, LlmResource, ModelsResource, PostgresResource
from pipelines.transforms.enrich import Abstractive, score_messages, summarize_conversations, topics_of


def _frame(lake: Lake, table: TableSpec, tenants: list[str], columns: list[str] | None = None) -> pl.DataFrame | None:
    data = lake.read(table, tenant_ids=tenants, columns=columns)
    return None if data is None else pl.from_arrow(data)


def default_scorer() -> SentimentScorer:
    from models.sentiment.vader import VaderScorer

    return VaderScorer()


class ChampionScorers:
    """The tenants' own sentiment models: the champion of `sentiment__<tenant>` in the registry at `registry_uri`,
    listed once per run (one query) and each loaded at most once, when its tenant has messages to score."""

    def __init__(self, registry_uri: str) -> None:
        self.registry_uri = registry_uri
        self._versions: dict[str, int] | None = None
        self._loaded: dict[str, SentimentScorer] = {}

    def names(self) -> dict[str, str]:
        """{tenant_id: scorer name} of the tenants with a champion."""
        from models.sentiment.model import champions, scorer_name

        if self._versions is None:
            self._versions = champions(self.registry_uri)
        return {tenant: scorer_name(tenant, version) for tenant, version in self._versions.items()}

    def __call__(self, tenant_id: str) -> SentimentScorer | None:
        if tenant_id not in self.names():
            return None
        if tenant_id not in self._loaded:
            from models.sentiment.model import load_version

            self._loaded[tenant_id] = load_version(self.registry_uri, tenant_id, self._versions[tenant_id])
        return self._loaded[tenant_id]


def rescore_tenants(lake: Lake, names: dict[str, str]) -> set[str]:
    """Of the tenants with their own model, those with scores by another scorer (a new champion since)."""
    dataset = lake.dataset(MESSAGE_SENTIMENT)
    if dataset is None or not names:
        return set()
    expression = pds.field("tenant_id").isin(sorted(names))
    scored = pl.from_arrow(dataset.to_table(columns=["tenant_id", "scorer"], filter=expression)).unique()
    return {tenant for tenant, scorer in scored.iter_rows() if scorer != names[tenant]}


def run_sentiment(lake: Lake, scorer: SentimentScorer, *, own: ChampionScorers | None = None) -> dict:
    """Score the customer messages of the tenants whose messages changed, and of those whose own model changed:
    with the tenant's own model where `own` has one, with `scorer` otherwise (those tenants together, one call)."""
    tenants, versions = changed_tenants(lake, targets=[MESSAGE_SENTIMENT], sources=[SILVER_MESSAGES])
    if own is not None:
        tenants |= rescore_tenants(lake, own.names())
    chunks = list(tenant_chunks(lake, SILVER_MESSAGES, tenants))
    scored = rows = 0
    own_models: dict[str, str] = {}
    columns = ["tenant_id", "message_id", "conversation_id", "created_at", "date", "role", "text"]
    for index, chunk in enumerate(chunks):
        messages = _frame(lake, SILVER_MESSAGES, chunk, columns)
        existing = _frame(lake, MESSAGE_SENTIMENT, chunk)
        models = {t: m for t in chunk if own is not None and (m := own(t)) is not None}
        own_models |= {t: m.name for t, m in models.items()}
        parts = [(sorted(set(chunk) - set(models)), scorer)] + [([t], m) for t, m in models.items()]
        frames = []
        for part_tenants, part_scorer in parts:
            if not part_tenants:
                continue
            in_part = pl.col("tenant_id").is_in(part_tenants)
            frame, now = score_messages(
                messages.filter(in_part), existing.filter(in_part) if existing is not None else None, part_scorer
            )
            frames.append(frame)
            scored += now
        frame = pl.concat(frames)
        lake.replace_tenants(
            MESSAGE_SENTIMENT,
            frame.to_arrow(),
            tenant_ids=chunk,
            sources=versions if index == len(chunks) - 1 else None,
        )
        rows += frame.height
    return {
        "tenants_rebuilt": len(tenants),
        "tenant_ids": dg.MetadataValue.json(sorted(tenants)),
        "scored_now": scored,
        "rows": rows,
        "scorer": scorer.name,
        "tenant_models": dg.MetadataValue.json(own_models),
    }


def llm_summaries(postgres: PostgresResource, llm: LlmResource) -> Abstractive | None:
    """The LLM summarizer as the transform wants it, or None when no provider is configured."""
    catalog = llm.catalog()
    if not catalog.providers:
        return None
    summarizer = LlmSummarizer(db_url=postgres.dsn, catalog=catalog, max_per_run=llm.max_summaries_per_run)

    def abstractive(tenant_id: str, asked: list) -> dict[str, tuple[str, str]]:
        candidates = [Candidate(c, turns, outcome) for c, turns, outcome in asked]
        done = summarizer.summarize(tenant_id=tenant_id, candidates=candidates)
        return {c: (s.text, s.method) for c, s in done.items()}

    return abstractive


def llm_tenants(postgres: PostgresResource) -> set[str]:
    with postgres.connect() as conn:
        rows = conn.execute(
            "SELECT tenant_id FROM tenant_policies WHERE coalesce((policy ->> 'llm_summaries')::boolean, false)"
        ).fetchall()
    return {tenant_id for (tenant_id,) in rows}


def awaiting_upgrade(lake: Lake, tenants: set[str]) -> set[str]:
    """Of these tenants, those with conversations that still have only an extractive summary."""
    dataset = lake.dataset(CONVERSATION_SUMMARIES)
    if dataset is None or not tenants:
        return set()
    expression = (pds.field("method") == "extractive") & pds.field("tenant_id").isin(sorted(tenants))
    return set(dataset.to_table(columns=["tenant_id"], filter=expression).column("tenant_id").to_pylist())


def run_summaries(lake: Lake, *, abstractive: Abstractive | None = None, upgrade: set[str] = frozenset()) -> dict:
    """Summaries of the tenants whose conversations changed, and of `upgrade` (tenants whose extractive summaries
    the LLM summarizer may now replace)."""
    sources = [SILVER_CONVERSATIONS, SILVER_MESSAGES]
    tenants, versions = changed_tenants(lake, targets=[CONVERSATION_SUMMARIES], sources=sources)
    tenants |= set(upgrade)
    chunks = list(tenant_chunks(lake, SILVER_MESSAGES, tenants))
    summarised = rows = 0
    for index, chunk in enumerate(chunks):
        frame, now = summarize_conversations(
            _frame(lake, SILVER_CONVERSATIONS, chunk),
            _frame(lake, SILVER_MESSAGES, chunk, ["tenant_id", "conversation_id", "seq", "role", "text", "confident"]),
            _frame(lake, CONVERSATION_SUMMARIES, chunk),
            abstractive=abstractive,
        )
        last = index == len(chunks) - 1
        lake.replace_tenants(
            CONVERSATION_SUMMARIES, frame.to_arrow(), tenant_ids=chunk, sources=versions if last else None
        )
        summarised, rows = summarised + now, rows + frame.height
    return {"tenants_rebuilt": len(tenants), "summarized_now": summarised, "rows": rows}


def run_topics(lake: Lake) -> dict:
    tenants, versions = changed_tenants(lake, targets=[CONVERSATION_TOPICS], sources=[SILVER_CONVERSATIONS])
    chunks = list(tenant_chunks(lake, SILVER_CONVERSATIONS, tenants))
    rows = 0
    for index, chunk in enumerate(chunks):
        conversations = _frame(
            lake, SILVER_CONVERSATIONS, chunk, ["tenant_id", "conversation_id", "date", "first_question"]
        )
        frame = topics_of(conversations)
        last = index == len(chunks) - 1
        lake.replace_tenants(
            CONVERSATION_TOPICS, frame.to_arrow(), tenant_ids=chunk, sources=versions if last else None
        )
        rows += frame.height
    return {"tenants_rebuilt": len(tenants), "rows": rows}


@dg.asset(
    key=SENTIMENT,
    deps=[MESSAGES],
    group_name="enrichment",
    kinds={"delta", "python"},
    description=(
        "Label (negative, neutral, positive) and score in [-1, 1] of every customer message, by the tenant's "
        "champion sentiment model when it has one, VADER otherwise."
    ),
)
def message_sentiment(lake: LakeResource, models: ModelsResource) -> dg.MaterializeResult:
    scorer = default_scorer()
    try:
        champions = ChampionScorers(models.registry().uri)
        return dg.MaterializeResult(metadata=run_sentiment(lake.lake(), scorer, own=champions))
    finally:
        close = getattr(scorer, "close", None)
        if close is not None:
            close()


@dg.asset(
    key=SUMMARIES,
    deps=[CONVERSATIONS, MESSAGES],
    group_name="enrichment",
    kinds={"delta", "python"},
    description=(
        "One summary per conversation: the customer's problem and the outcome; by the router's paid tiers for "
        "tenants whose policy sets llm_summaries, extractive otherwise."
    ),
)
def conversation_summaries(lake: LakeResource, postgres: PostgresResource, llm: LlmResource) -> dg.MaterializeResult:
    store = lake.lake()
    abstractive = llm_summaries(postgres, llm)
    upgrade = awaiting_upgrade(store, llm_tenants(postgres)) if abstractive else set()
    return dg.MaterializeResult(metadata=run_summaries(store, abstractive=abstractive, upgrade=upgrade))


@dg.asset(
    key=TOPICS,
    deps=[CONVERSATIONS],
    group_name="enrichment",
    kinds={"delta", "scikitlearn"},
    description="A topic per conversation, clustered per tenant from the customers' first questions.",
)
def conversation_topics(lake: LakeResource) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=run_topics(lake.lake()))
