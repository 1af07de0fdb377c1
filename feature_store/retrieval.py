"""Point-in-time retrieval: features for (entity keys, event_timestamp) rows, from the lake as it was known then.

Each view turns its source rows into a timeline per entity — cumulative values that change at the moments rows become
known — and a backward as-of join (polars `join_asof`, `by` the entity keys, tenant_id always among them) picks, for
each entity row, the latest point at or before its `event_timestamp`. Only the tenants (and conversations) of the
entity rows are read from the lake, and only the columns a view needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

import polars as pl
import pyarrow.dataset as pds

from core.lake import GOLD_TENANT_DAILY, MESSAGE_SENTIMENT, SILVER_CONVERSATIONS, SILVER_MESSAGES, Lake, TableSpec
from feature_store.definitions import (
    CONVERSATION_STATE,
    EVENT_TIMESTAMP,
    TENANT_DAILY_FEATURES,
    VIEWS,
    Feature,
    FeatureView,
    resolve,
)

TS = pl.Datetime("us", "UTC")
_ROW = "__feature_store_row"
_AT = "__feature_store_at"  # when a timeline point became known


def get_historical_features(*, lake: Lake, entity_df: pl.DataFrame, features: Sequence[str]) -> pl.DataFrame:
    """`entity_df` (entity keys + `event_timestamp`, tz-aware) with one column per feature, in the order asked,
    each computed from data known at or before the row's `event_timestamp`. Rows keep their order (duplicates too).

    `features` are `"view:feature"` names (`"view:*"` for all of a view's); see `feature_catalog()`. The column of a
    feature is its bare name. No history gives 0 for counts and null for ratios and durations."""
    chosen = resolve(features)
    by_view: dict[str, list[Feature]] = {}
    for view, feature in chosen:
        by_view.setdefault(view.name, []).append(feature)
    entities = _checked_entities(entity_df, [VIEWS[name] for name in by_view])
    clashes = sorted({feature.name for _, feature in chosen} & set(entity_df.columns))
    if clashes:
        raise ValueError(f"entity_df already has columns named like the features asked for: {clashes}")
    result = entity_df.with_row_index(_ROW)
    for view_name, view_features in by_view.items():
        keys = [_ROW, *VIEWS[view_name].entity.keys, EVENT_TIMESTAMP]
        names = [feature.name for feature in view_features]
        points = entities.select(keys)
        values = _BUILDERS[view_name](lake, points, names) if points.height else _empty(points, view_features)
        result = result.join(values.select(_ROW, *names), on=_ROW, how="left").with_columns(
            _fill(feature) for feature in view_features
        )
    return result.sort(_ROW).select(*entity_df.columns, *[feature.name for _, feature in chosen])


# --- input checks and defaults ------------------------------------------------------------------------------------


def _checked_entities(entity_df: pl.DataFrame, views: list[FeatureView]) -> pl.DataFrame:
    if not isinstance(entity_df, pl.DataFrame):
        raise ValueError(f"entity_df must be a polars DataFrame, not {type(entity_df).__name__}")
    needed = [EVENT_TIMESTAMP, *dict.fromkeys(key for view in views for key in view.entity.keys)]
    missing = [name for name in needed if name not in entity_df.columns]
    if missing:
        raise ValueError(f"entity_df lacks columns {missing}; the features asked for need {needed}")
    dtype = entity_df.schema[EVENT_TIMESTAMP]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise ValueError(f"{EVENT_TIMESTAMP} must be a timezone-aware Datetime (UTC), not {dtype}")
    if entity_df[EVENT_TIMESTAMP].null_count():
        raise ValueError(f"{EVENT_TIMESTAMP} has nulls: every entity row needs a point in time")
    keys = needed[1:]
    return entity_df.with_row_index(_ROW).select(
        _ROW,
        *[pl.col(key).cast(pl.String) for key in keys],
        pl.col(EVENT_TIMESTAMP).dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
    )


def _empty(points: pl.DataFrame, features: list[Feature]) -> pl.DataFrame:
    return points.select(_ROW, *[pl.lit(None, dtype=f.dtype).alias(f.name) for f in features])


def _fill(feature: Feature) -> pl.Expr:
    column = pl.col(feature.name).cast(feature.dtype)
    if feature.default is not None:
        return column.fill_null(feature.default)
    if feature.dtype == pl.List(pl.String):
        return column.fill_null(pl.lit([], dtype=feature.dtype))
    return column


# --- reading the lake ---------------------------------------------------------------------------------------------


def _read(
    lake: Lake, table: TableSpec, columns: list[str], tenants: list[str], extra: pds.Expression | None = None
) -> pl.DataFrame | None:
    """The tenants' rows (partition pruning by tenant_id), only `columns`; None when the table does not exist."""
    dataset = lake.dataset(table)
    if dataset is None:
        return None
    condition = pds.field("tenant_id").isin(sorted(set(tenants)))
    if extra is not None:
        condition = condition & extra
    return pl.from_arrow(dataset.to_table(columns=columns, filter=condition))


def _asof(points: pl.DataFrame, timeline: pl.DataFrame, *, by: list[str], left_on: str, right_on: str) -> pl.DataFrame:
    """For each point, the timeline's latest row of the same entity at or before it (nulls when there is none)."""
    return points.sort(left_on).join_asof(
        timeline.sort(right_on),
        left_on=left_on,
        right_on=right_on,
        by=by,
        strategy="backward",
        allow_exact_matches=True,
        check_sortedness=False,  # both sides are sorted by the as-of key just above
    )


# --- tenant_daily_features ----------------------------------------------------------------------------------------

_DAILY_COUNTS = ("conversations", "resolved", "closed", "feedback_up", "rated", "negative", "scored")
_DAILY_SUMS = (*_DAILY_COUNTS, "cost_usd")


def _tenant_daily(lake: Lake, points: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    # Day D is known from D+1 00:00 UTC on, so at t the known days are those up to date(t) - 1 (exactly: D+1 <= t
    # iff D <= date(t) - 1). A window of N days covers date(t)-N .. date(t)-1, summed as the difference of two
    # cumulative sums per tenant, C(date(t)-1) - C(date(t)-1-N): missing days add nothing.
    points = points.with_columns(last_day=pl.col(EVENT_TIMESTAMP).dt.date() - timedelta(days=1))
    last = points["last_day"].max()
    gold = _read(
        lake,
        GOLD_TENANT_DAILY,
        [
            "tenant_id",
            "date",
            "conversations",
            "resolved",
            "handoff",
            "abandoned",
            "feedback_up",
            "feedback_down",
            "sentiment_negative",
            "sentiment_neutral",
            "sentiment_positive",
            "cost_usd",
        ],
        points["tenant_id"].drop_nulls().unique().to_list(),
        pds.field("date") <= pds.scalar(last),
    )
    if gold is None:
        return _empty(points, [TENANT_DAILY_FEATURES.feature(name) for name in names])
    sentiments = ["sentiment_negative", "sentiment_neutral", "sentiment_positive"]
    cumulative = (
        gold.select(
            "tenant_id",
            "date",
            conversations=pl.col("conversations"),
            resolved=pl.col("resolved"),
            closed=pl.col("resolved") + pl.col("handoff") + pl.col("abandoned"),
            feedback_up=pl.col("feedback_up"),
            rated=pl.col("feedback_up") + pl.col("feedback_down"),
            # a day not scored yet has null sentiment: it counts neither as negative nor as scored
            negative=pl.col("sentiment_negative"),
            scored=pl.when(pl.all_horizontal(pl.col(sentiments).is_not_null())).then(pl.sum_horizontal(sentiments)),
            cost_usd=pl.col("cost_usd"),
        )
        .with_columns(pl.col(_DAILY_COUNTS).fill_null(0).cast(pl.Int64), cost_usd=pl.col("cost_usd").fill_null(0.0))
        .sort("tenant_id", "date")
        .with_columns(pl.col(_DAILY_SUMS).cum_sum().over("tenant_id"))
    )
    frame = points
    for label, offset in (("now", 0), ("7d", 7), ("28d", 28)):
        lookup = frame.with_columns(_lookup=pl.col("last_day") - timedelta(days=offset))
        found = _asof(lookup, cumulative, by=["tenant_id"], left_on="_lookup", right_on="date")
        frame = found.select(
            *frame.columns,
            *[pl.col(s).fill_null(0).alias(f"{s}@{label}") for s in _DAILY_SUMS],
            pl.col("date").alias(f"date@{label}"),
        )

    def window(column: str, days: int) -> pl.Expr:
        return pl.col(f"{column}@now") - pl.col(f"{column}@{days}d")

    def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
        return pl.when(denominator > 0).then(numerator / denominator)

    columns = {"days_since_last_row": (pl.col("last_day") - pl.col("date@now")).dt.total_days()}
    for days in (7, 28):
        columns |= {
            f"conversations_{days}d": window("conversations", days),
            f"deflection_rate_{days}d": ratio(window("resolved", days), window("closed", days)),
            f"satisfaction_{days}d": ratio(window("feedback_up", days), window("rated", days)),
            f"negative_sentiment_share_{days}d": ratio(window("negative", days), window("scored", days)),
            f"cost_per_conversation_{days}d_usd": ratio(window("cost_usd", days), window("conversations", days)),
        }
    return frame.select(_ROW, *[columns[name].alias(name) for name in names])


# --- conversation_state -------------------------------------------------------------------------------------------

_STATE_COUNTS = (
    "messages",
    "customer_messages",
    "unconfident_answers",
    "thumbs_up",
    "thumbs_down",
    "negative_customer_messages",
)


def _conversation_state(lake: Lake, points: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    keys = ["tenant_id", "conversation_id"]
    tenants = points["tenant_id"].drop_nulls().unique().to_list()
    until = pds.scalar(points[EVENT_TIMESTAMP].max())
    of_these = pds.field("conversation_id").isin(points["conversation_id"].drop_nulls().unique().to_list())
    empty_messages = {
        "tenant_id": pl.String,
        "conversation_id": pl.String,
        "message_id": pl.String,
        "role": pl.String,
        "created_at": TS,
        "confident": pl.Boolean,
        "tier": pl.String,
        "cost_usd": pl.Float64,
        "feedback": pl.String,
        "feedback_at": TS,
    }
    messages = _read(
        lake, SILVER_MESSAGES, list(empty_messages), tenants, of_these & (pds.field("created_at") <= until)
    )
    messages = pl.DataFrame(schema=empty_messages) if messages is None else messages
    started = _read(
        lake, SILVER_CONVERSATIONS, [*keys, "started_at"], tenants, of_these & (pds.field("started_at") <= until)
    )

    scored = False
    if "negative_customer_messages" in names:
        sentiment = _read(lake, MESSAGE_SENTIMENT, ["tenant_id", "message_id", "label", "scored_at"], tenants, of_these)
        if sentiment is not None:
            scored = True
            # one label per message: the latest scorer's (a tenant's table normally holds one scorer)
            latest = sentiment.sort("scored_at").unique(["tenant_id", "message_id"], keep="last")
            messages = messages.join(
                latest.select("tenant_id", "message_id", "label"), on=["tenant_id", "message_id"], how="left"
            )
    negative = (pl.col("role") == "user") & (pl.col("label") == "negative") if scored else pl.lit(False)

    assistant = pl.col("role") == "assistant"
    tiers = sorted(messages.filter(assistant)["tier"].drop_nulls().unique().to_list())
    tier_flags = {f"_tier{i}": assistant & (pl.col("tier") == tier) for i, tier in enumerate(tiers)}
    # Every row below is a moment something became known, with what it adds; the state at t sums those up to t.
    # A message's sentiment label, cost and tier count from its created_at (the scorer is a function of the text;
    # scored_at is only when a batch ran), its rating from feedback_at (silver keeps a message's latest rating).
    said = messages.select(
        *keys,
        pl.col("created_at").alias(_AT),
        messages=pl.lit(1),
        customer_messages=pl.col("role") == "user",
        unconfident_answers=assistant & (pl.col("confident") == False),  # noqa: E712 (polars expression)
        negative_customer_messages=negative,
        cost_usd=pl.col("cost_usd").fill_null(0.0),
        **tier_flags,
    )
    rated = messages.filter(pl.col("feedback").is_not_null()).select(
        *keys,
        pl.col("feedback_at").alias(_AT),
        thumbs_up=pl.col("feedback") == "up",
        thumbs_down=pl.col("feedback") == "down",
    )
    events = [said, rated]
    if started is not None:
        events.append(started.select(*keys, pl.col("started_at").alias(_AT)))
    counts = [*_STATE_COUNTS, *tier_flags]
    timeline = (
        pl.concat(events, how="diagonal_relaxed")
        .filter(pl.col(_AT).is_not_null())
        .with_columns(pl.col(counts).cast(pl.Int64).fill_null(0), pl.col("cost_usd").fill_null(0.0))
        .group_by(*keys, _AT)
        .agg(pl.col(*counts, "cost_usd").sum())
        .sort(*keys, _AT)
        .pipe(_running_totals, keys, [*counts, "cost_usd"])
    )
    found = _asof(points, timeline, by=keys, left_on=EVENT_TIMESTAMP, right_on=_AT)
    has_tier = [pl.when(pl.col(flag) > 0).then(pl.lit(tier)) for flag, tier in zip(tier_flags, tiers, strict=True)]
    columns = {
        **{name: pl.col(name).fill_null(0) for name in _STATE_COUNTS},
        "negative_customer_messages": pl.col("negative_customer_messages").fill_null(0)
        if scored
        else pl.lit(None, dtype=pl.Int64),
        "seconds_since_start": (pl.col(EVENT_TIMESTAMP) - pl.col("started_at")).dt.total_microseconds() / 1e6,
        "cost_usd": pl.col("cost_usd").fill_null(0.0),
        "tiers_used": pl.concat_list(has_tier).list.drop_nulls() if has_tier else pl.lit([], dtype=pl.List(pl.String)),
    }
    return found.select(_ROW, *[columns[name].alias(name) for name in names])


def _running_totals(frame: pl.DataFrame, keys: list[str], columns: list[str]) -> pl.DataFrame:
    """Each entity's running totals of `columns` in time order, and its first time as `started_at` (`frame` sorted
    by keys and time). One pass: the running total over the whole frame minus its value where the entity's rows
    begin (several times faster than `cum_sum().over(keys)` on many columns)."""
    begins = pl.any_horizontal([pl.col(key) != pl.col(key).shift(1) for key in keys]).fill_null(True)

    def since_begin(column: str) -> pl.Expr:
        total = pl.col(column).cum_sum()
        return total - pl.when(begins).then(total - pl.col(column)).forward_fill()

    return frame.with_columns(
        *[since_begin(column).alias(column) for column in columns],
        started_at=pl.when(begins).then(pl.col(_AT)).forward_fill(),
    )


_BUILDERS: dict[str, Callable[[Lake, pl.DataFrame, list[str]], pl.DataFrame]] = {
    TENANT_DAILY_FEATURES.name: _tenant_daily,
    CONVERSATION_STATE.name: _conversation_state,
}
