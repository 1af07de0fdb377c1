"""Entities and feature views: the features training and serving share, defined once.

A feature is named `"<view>:<feature>"` when asked for; its column in the result is the bare feature name (unique
across all views). Every view says which lake tables it reads and when a source row becomes *known*: a feature value
for an entity row at `event_timestamp` t is computed only from rows known at or before t.

Missing history: counts and sums are 0, ratios and durations are null (no denominator, nothing started yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from core.lake import GOLD_TENANT_DAILY, MESSAGE_SENTIMENT, SILVER_CONVERSATIONS, SILVER_MESSAGES

EVENT_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class Entity:
    name: str
    keys: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: pl.DataType
    description: str
    default: object = None  # the value when there is no history: 0 for counts, None otherwise


@dataclass(frozen=True)
class FeatureView:
    name: str
    entity: Entity
    sources: tuple[str, ...]  # lake tables
    timestamp: str  # the column(s) that say when a source row becomes known
    description: str
    features: tuple[Feature, ...]

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise ValueError(
            f"view {self.name!r} has no feature {name!r}; its features: "
            + ", ".join(f"{self.name}:{f.name}" for f in self.features)
        )


TENANT = Entity("tenant", ("tenant_id",), "a tenant of the platform")
CONVERSATION = Entity("conversation", ("tenant_id", "conversation_id"), "one conversation of one tenant")
ENTITIES = {entity.name: entity for entity in (TENANT, CONVERSATION)}


def _count(name: str, description: str) -> Feature:
    return Feature(name, pl.Int64, description, default=0)


def _rolling(days: int) -> tuple[Feature, ...]:
    window = f"the {days} complete UTC days before t"
    return (
        _count(f"conversations_{days}d", f"conversations started in {window}"),
        Feature(
            f"deflection_rate_{days}d",
            pl.Float64,
            f"resolved / (resolved + handoff + abandoned) over {window}; null without closed conversations",
        ),
        Feature(
            f"satisfaction_{days}d",
            pl.Float64,
            f"thumbs up / (up + down) over {window}; null without feedback",
        ),
        Feature(
            f"negative_sentiment_share_{days}d",
            pl.Float64,
            f"share of scored customer messages labelled negative over {window}; null when none were scored",
        ),
        Feature(
            f"cost_per_conversation_{days}d_usd",
            pl.Float64,
            f"model cost / conversations over {window}; null without conversations",
        ),
    )


TENANT_DAILY_FEATURES = FeatureView(
    name="tenant_daily_features",
    entity=TENANT,
    sources=(GOLD_TENANT_DAILY.name,),
    timestamp="date: a day's row is known once the day is over (at date + 1 day, 00:00 UTC)",
    description=(
        "Rolling 7- and 28-day tenant activity from gold/tenant_daily. Windows are calendar days ending with the "
        "last complete UTC day before t; a day without a row counts as a day without traffic."
    ),
    features=(
        *_rolling(7),
        *_rolling(28),
        Feature(
            "days_since_last_row",
            pl.Int64,
            "days from the latest day with a gold row to the last complete day before t (0: yesterday's row is "
            "in); null before the tenant's first row. Large values mean no traffic, or a gold pipeline lagging",
        ),
    ),
)

CONVERSATION_STATE = FeatureView(
    name="conversation_state",
    entity=CONVERSATION,
    sources=(SILVER_MESSAGES.name, SILVER_CONVERSATIONS.name, MESSAGE_SENTIMENT.name),
    timestamp=(
        "messages.created_at for a message (and its sentiment label, its cost and its tier), "
        "messages.feedback_at for its thumbs up/down, conversations.started_at for the start"
    ),
    description="The state of a conversation as of t: what had been said, answered and rated by then.",
    features=(
        _count("messages", "messages so far (customer and assistant)"),
        _count("customer_messages", "customer messages so far"),
        Feature(
            "seconds_since_start",
            pl.Float64,
            "seconds from the conversation's start to t; null if it had not started by t",
        ),
        _count("unconfident_answers", "assistant answers so far that were not confident (offered a person)"),
        _count("thumbs_up", "thumbs up given by t (counted at feedback_at, not at the message)"),
        _count("thumbs_down", "thumbs down given by t (counted at feedback_at, not at the message)"),
        Feature(
            "negative_customer_messages",
            pl.Int64,
            "customer messages so far that the sentiment scorer labelled negative (unscored ones are not "
            "counted); 0 without messages, null when the lake has no sentiment table",
        ),
        Feature("cost_usd", pl.Float64, "model cost of the answers so far", default=0.0),
        Feature(
            "tiers_used",
            pl.List(pl.String),
            "sorted distinct tiers (cache, kb, local, llm...) that answered so far; empty before any answer",
        ),
    ),
)

VIEWS: dict[str, FeatureView] = {view.name: view for view in (TENANT_DAILY_FEATURES, CONVERSATION_STATE)}


def _check_unique_names() -> None:
    seen: dict[str, str] = {}
    for view in VIEWS.values():
        for feature in view.features:
            if feature.name in seen:
                raise RuntimeError(f"feature {feature.name!r} is defined by both {seen[feature.name]} and {view.name}")
            seen[feature.name] = view.name


_check_unique_names()


def feature_names() -> list[str]:
    """Every valid `"view:feature"` name."""
    return [f"{view.name}:{feature.name}" for view in VIEWS.values() for feature in view.features]


def feature_catalog() -> pl.DataFrame:
    """One row per feature: its full name, view, entity and keys, type, description, and where it comes from."""
    rows = [
        {
            "name": f"{view.name}:{feature.name}",
            "view": view.name,
            "feature": feature.name,
            "entity": view.entity.name,
            "keys": list(view.entity.keys),
            "dtype": str(feature.dtype),
            "default": None if feature.default is None else str(feature.default),
            "description": feature.description,
            "sources": list(view.sources),
            "timestamp": view.timestamp,
            "view_description": view.description,
        }
        for view in VIEWS.values()
        for feature in view.features
    ]
    return pl.DataFrame(rows)


def resolve(features: Sequence[str]) -> list[tuple[FeatureView, Feature]]:
    """The views and features of `"view:feature"` names, in the order asked, duplicates dropped; `"view:*"` means
    all of a view's features. Raises ValueError naming the valid views or features."""
    if isinstance(features, str):
        raise ValueError(f'features must be a list of "view:feature" names, not one string: [{features!r}]')
    if not features:
        raise ValueError("no features asked for; valid: " + ", ".join(feature_names()))
    chosen: list[tuple[FeatureView, Feature]] = []
    for name in features:
        view_name, sep, feature_name = str(name).partition(":")
        if not sep or not feature_name:
            raise ValueError(f'feature {name!r} is not "view:feature"; valid: ' + ", ".join(feature_names()))
        view = VIEWS.get(view_name)
        if view is None:
            raise ValueError(f"unknown feature view {view_name!r} (in {name!r}); views: " + ", ".join(VIEWS))
        wanted = view.features if feature_name == "*" else (view.feature(feature_name),)
        chosen.extend((view, feature) for feature in wanted if (view, feature) not in chosen)
    return chosen
