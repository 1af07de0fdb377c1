"""Learning per-intent routes from outcomes: for each tenant and intent, the cheapest tier whose measured answer
quality stays within the tenant's tolerance of the best tier's.

An answer's quality is read from what followed it, strongest signal first: a thumbs rating says it (up 1, down 0);
without one, the mean of what is known of "the conversation ended without a handoff" and "the customer's next
message was not negative". Cache hits are left out (they repeat an earlier tier's answer), and so are tiers the
tenant's policy does not list (the router would ignore a route to them).

A cheaper tier qualifies when it has at least `min_samples` answers for the intent and the lower bound of its quality
(Wilson score, `z` standard errors) reaches the best tier's mean less the tolerance: a cheap tier that looks as good
on a handful of answers does not take an intent's traffic. A route to a paid tier leaves the free tiers in front of
it (core/llm/orchestrator.py): it picks the model for what the knowledge base is not sure of. `explore_share` of
conversations keep the plain policy afterwards, so every tier goes on being measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from core.llm.intent_routes import IntentRoute

MIN_SAMPLES = 30
EXPLORE_SHARE = 0.1
Z = 1.0  # one-sided, about 84% confidence that the cheaper tier's quality is as good as it looks
SKIPPED_TIERS = ("cache",)


@dataclass(frozen=True)
class TierFigures:
    tier: str
    answers: int
    quality: float
    cost_usd: float  # mean per answer

    def lower_bound(self, z: float = Z) -> float:
        """Wilson score lower bound of the quality, read as a proportion of good answers."""
        n, p = self.answers, self.quality
        if n == 0:
            return 0.0
        centre = p + z * z / (2 * n)
        margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return max(0.0, (centre - margin) / (1 + z * z / n))


def answer_quality(
    messages: pl.DataFrame, conversations: pl.DataFrame, sentiment: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per assistant answer: tenant_id, conversation_id, intent, tier, cost_usd, quality (0..1).

    `messages` is silver's (tenant_id, conversation_id, seq, role, tier, model, intent, feedback, cost_usd,
    message_id, cache_hit), `conversations` silver's (tenant_id, conversation_id, handoff), `sentiment` the enrichment
    (tenant_id, message_id, label). The intent of an answer is its question's: the customer message before it."""
    key = ["tenant_id", "conversation_id"]
    ordered = messages.sort([*key, "seq"])
    negative = (
        sentiment.select("tenant_id", "message_id", negative=pl.col("label") == "negative")
        if sentiment is not None and sentiment.height
        else pl.DataFrame(schema={"tenant_id": pl.String, "message_id": pl.String, "negative": pl.Boolean})
    )
    ordered = ordered.join(negative, on=["tenant_id", "message_id"], how="left")
    user = pl.col("role") == "user"
    ordered = ordered.with_columns(
        question_intent=pl.when(user).then(pl.col("intent")).forward_fill().over(key),
        next_negative=pl.when(user).then(pl.col("negative")).backward_fill().over(key),
    )
    answers = ordered.filter(
        (pl.col("role") == "assistant") & ~pl.col("cache_hit").fill_null(False) & pl.col("tier").is_not_null()
    )
    answers = answers.join(conversations.select(*key, "handoff"), on=key, how="left")
    tier = pl.when(pl.col("tier") == "llm").then(pl.col("model")).otherwise(pl.col("tier"))
    outcome_signals = [
        pl.when(pl.col("handoff").is_not_null()).then((~pl.col("handoff")).cast(pl.Float64)),
        pl.when(pl.col("next_negative").is_not_null()).then((~pl.col("next_negative")).cast(pl.Float64)),
    ]
    from_outcomes = pl.mean_horizontal(outcome_signals)
    rated = pl.when(pl.col("feedback") == "up").then(1.0).when(pl.col("feedback") == "down").then(0.0)
    return answers.select(
        *key,
        intent=pl.coalesce("intent", "question_intent"),
        tier=tier,
        cost_usd=pl.col("cost_usd").fill_null(0.0),
        quality=pl.coalesce(rated, from_outcomes),
    ).filter(pl.col("intent").is_not_null() & pl.col("quality").is_not_null() & pl.col("tier").is_not_null())


def tier_figures(answers: pl.DataFrame) -> dict[tuple[str, str], list[TierFigures]]:
    """(tenant_id, intent) -> each tier's answers, mean quality and mean cost."""
    grouped = answers.group_by("tenant_id", "intent", "tier").agg(
        answers=pl.len(), quality=pl.col("quality").mean(), cost_usd=pl.col("cost_usd").mean()
    )
    figures: dict[tuple[str, str], list[TierFigures]] = {}
    for row in grouped.sort("tenant_id", "intent", "tier").iter_rows(named=True):
        figures.setdefault((row["tenant_id"], row["intent"]), []).append(
            TierFigures(row["tier"], row["answers"], row["quality"], row["cost_usd"])
        )
    return figures


def choose(
    tiers: Sequence[TierFigures],
    *,
    tolerance: float,
    min_samples: int = MIN_SAMPLES,
    z: float = Z,
) -> tuple[TierFigures, TierFigures] | None:
    """(chosen, best) for one intent, or None (the plain policy stays in charge) when fewer than two tiers have
    min_samples answers, or when a tier with fewer answers looks better than the best measured one: until it is
    measured, nothing says the best measured tier is the best."""
    measured = [tier for tier in tiers if tier.answers >= min_samples]
    if len(measured) < 2:
        return None
    best = max(measured, key=lambda t: (t.quality, -t.cost_usd))
    if any(t.answers < min_samples and t.quality > best.quality for t in tiers):
        return None
    holding = [t for t in measured if t is best or t.lower_bound(z) >= best.quality - tolerance]
    chosen = min(holding, key=lambda t: (t.cost_usd, -t.quality))
    return chosen, best


def learn_routes(
    answers: pl.DataFrame,
    *,
    policies: Mapping[str, tuple[Sequence[str], float]],
    days: float,
    min_samples: int = MIN_SAMPLES,
    explore_share: float = EXPLORE_SHARE,
    z: float = Z,
) -> dict[str, list[IntentRoute]]:
    """tenant_id -> its routes, from answer_quality's rows over `days` days. `policies`: tenant_id -> (the tiers its
    policy lists, its route tolerance); a tenant without an entry gets no routes."""
    listed = answers.filter(~pl.col("tier").is_in(SKIPPED_TIERS))
    routes: dict[str, list[IntentRoute]] = {tenant: [] for tenant in policies}
    for (tenant, intent), tiers in tier_figures(listed).items():
        if tenant not in policies:
            continue
        allowed, tolerance = policies[tenant]
        picked = choose([t for t in tiers if t.tier in allowed], tolerance=tolerance, min_samples=min_samples, z=z)
        if picked is None:
            continue
        chosen, best = picked
        routes[tenant].append(
            IntentRoute(
                intent=intent,
                tier=chosen.tier,
                samples=chosen.answers,
                explore_share=explore_share,
                quality=round(chosen.quality, 4),
                baseline_tier=best.tier,
                baseline_quality=round(best.quality, 4),
                baseline_cost_usd=best.cost_usd,
                route_cost_usd=chosen.cost_usd,
                answers_per_day=sum(t.answers for t in tiers) / max(days, 1e-9),
            )
        )
    return routes
