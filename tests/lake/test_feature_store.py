"""The feature store against real Delta tables: hand-made lakes whose answers are known, then the demo lakehouse."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.lake import GOLD_TENANT_DAILY, MESSAGE_SENTIMENT, SILVER_CONVERSATIONS, SILVER_MESSAGES, Lake, TableSpec
from feature_store import VIEWS, feature_catalog, feature_names, get_historical_features
from pipelines.transforms.enrich import SENTIMENT_SCHEMA
from pipelines.transforms.gold import TENANT_DAILY_SCHEMA
from pipelines.transforms.silver import CONVERSATIONS_SCHEMA, MESSAGES_SCHEMA

A, B, C = "t_aaaa", "t_bbbb", "t_cccc"
T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
STATE = [f"conversation_state:{f.name}" for f in VIEWS["conversation_state"].features]
DAILY = [f"tenant_daily_features:{f.name}" for f in VIEWS["tenant_daily_features"].features]


def write(lake: Lake, table: TableSpec, schema: pl.Schema, rows: list[dict]) -> None:
    lake.overwrite(table, pl.from_dicts(rows, schema=schema).to_arrow())


def entities(rows: list[tuple]) -> pl.DataFrame:
    """Entity rows from (tenant, t) or (tenant, conversation, t) tuples."""
    columns = (
        ["tenant_id", "event_timestamp"] if len(rows[0]) == 2 else ["tenant_id", "conversation_id", "event_timestamp"]
    )
    return pl.DataFrame(rows, schema=columns, orient="row").with_columns(
        pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))
    )


def message(tenant, conversation, seq, role, at, **extra) -> dict:
    return {
        "tenant_id": tenant,
        "conversation_id": conversation,
        "message_id": f"m_{tenant}_{conversation}_{seq}",
        "seq": seq,
        "role": role,
        "created_at": at,
        "date": at.date(),
        "text": f"message {seq}",
        **extra,
    }


def sentiment(row: dict, label: str) -> dict:
    return {
        "tenant_id": row["tenant_id"],
        "message_id": row["message_id"],
        "conversation_id": row["conversation_id"],
        "created_at": row["created_at"],
        "date": row["date"],
        "label": label,
        "score": -0.5 if label == "negative" else 0.0,
        "scorer": "vader",
        "scored_at": T0 + timedelta(days=20),  # scored long after: labels count from the message's own time
    }


@pytest.fixture
def conversation_lake(tmp_path: Path) -> Lake:
    """Tenant A's conversation c_1 (started T0-2s): a customer question, a confident kb answer rated down a minute
    later, a negative follow-up, an unconfident llm answer. Tenant B has a conversation with the same id: one
    customer message and a cache answer rated up."""
    lake = Lake(tmp_path / "lake")
    a = [
        message(A, "c_1", 1, "user", T0),
        message(
            A,
            "c_1",
            2,
            "assistant",
            T0 + S,
            tier="kb",
            confident=True,
            cost_usd=0.0,
            feedback="down",
            feedback_at=T0 + 60 * S,
        ),
        message(A, "c_1", 3, "user", T0 + 30 * S),
        message(A, "c_1", 4, "assistant", T0 + 31 * S, tier="llm", confident=False, cost_usd=0.01),
    ]
    b = [
        message(B, "c_1", 1, "user", T0 + 10 * S),
        message(
            B,
            "c_1",
            2,
            "assistant",
            T0 + 11 * S,
            tier="cache",
            confident=True,
            cost_usd=0.0,
            feedback="up",
            feedback_at=T0 + 12 * S,
        ),
    ]
    write(lake, SILVER_MESSAGES, MESSAGES_SCHEMA, a + b)
    conversations = [
        {"tenant_id": A, "conversation_id": "c_1", "started_at": T0 - 2 * S, "date": T0.date()},
        {"tenant_id": B, "conversation_id": "c_1", "started_at": T0 + 10 * S, "date": T0.date()},
    ]
    write(lake, SILVER_CONVERSATIONS, CONVERSATIONS_SCHEMA, conversations)
    labels = [sentiment(a[0], "neutral"), sentiment(a[2], "negative"), sentiment(b[0], "negative")]
    write(lake, MESSAGE_SENTIMENT, SENTIMENT_SCHEMA, labels)
    return lake


def test_conversation_state_counts_only_what_was_known_at_t(conversation_lake):
    offsets = [-5, -1, 0, 1, 29, 30, 31, 59, 60, 86_400]
    frame = entities([(A, "c_1", T0 + k * S) for k in offsets])
    out = get_historical_features(lake=conversation_lake, entity_df=frame, features=STATE)
    rows = {k: row for k, row in zip(offsets, out.iter_rows(named=True), strict=True)}

    before = rows[-5]  # not started yet
    assert (before["messages"], before["customer_messages"], before["thumbs_down"]) == (0, 0, 0)
    assert before["seconds_since_start"] is None and before["tiers_used"] == [] and before["cost_usd"] == 0.0
    assert rows[-1]["messages"] == 0 and rows[-1]["seconds_since_start"] == pytest.approx(1.0)
    assert rows[0]["messages"] == 1 and rows[0]["customer_messages"] == 1  # a message at exactly t counts
    assert rows[0]["tiers_used"] == [] and rows[1]["tiers_used"] == ["kb"] and rows[1]["messages"] == 2
    assert rows[29]["messages"] == 2 and rows[29]["negative_customer_messages"] == 0
    assert rows[30]["customer_messages"] == 2 and rows[30]["negative_customer_messages"] == 1
    assert rows[30]["unconfident_answers"] == 0 and rows[31]["unconfident_answers"] == 1
    assert rows[31]["tiers_used"] == ["kb", "llm"] and rows[31]["cost_usd"] == pytest.approx(0.01)
    # the thumbs down was given at T0+60s: not known a second before, although its message is from T0+1s
    assert rows[59]["thumbs_down"] == 0 and rows[60]["thumbs_down"] == 1
    assert rows[60]["thumbs_up"] == 0
    later = rows[86_400]
    assert (later["messages"], later["customer_messages"], later["unconfident_answers"]) == (4, 2, 1)
    assert later["seconds_since_start"] == pytest.approx(86_402.0)


def test_conversations_with_the_same_id_in_two_tenants_never_mix(conversation_lake):
    at = T0 + 3600 * S
    frame = entities([(A, "c_1", at), (B, "c_1", at), (C, "c_1", at), (A, "c_2", at)])
    out = get_historical_features(lake=conversation_lake, entity_df=frame, features=STATE)
    a, b, c, other = out.iter_rows(named=True)
    assert (a["messages"], a["thumbs_up"], a["thumbs_down"], a["tiers_used"]) == (4, 0, 1, ["kb", "llm"])
    assert (b["messages"], b["thumbs_up"], b["thumbs_down"], b["tiers_used"]) == (2, 1, 0, ["cache"])
    assert b["negative_customer_messages"] == 1 and b["seconds_since_start"] == pytest.approx(3590.0)
    for unknown in (c, other):  # no history: counts 0, duration null
        assert unknown["messages"] == 0 and unknown["negative_customer_messages"] == 0
        assert unknown["seconds_since_start"] is None and unknown["tiers_used"] == []


def test_without_a_sentiment_table_the_negative_count_is_unknown(tmp_path):
    lake = Lake(tmp_path / "lake")
    write(lake, SILVER_MESSAGES, MESSAGES_SCHEMA, [message(A, "c_1", 1, "user", T0)])
    out = get_historical_features(
        lake=lake,
        entity_df=entities([(A, "c_1", T0)]),
        features=["conversation_state:negative_customer_messages", "conversation_state:messages"],
    )
    assert out.row(0, named=True) | {} == {
        "tenant_id": A,
        "conversation_id": "c_1",
        "event_timestamp": T0,
        "negative_customer_messages": None,
        "messages": 1,
    }


# --- tenant_daily_features ----------------------------------------------------------------------------------------

OCTOBER = [date(2026, 10, d) for d in range(1, 32) if d != 15]  # no row for the 15th: a day without traffic


def gold_row(tenant: str, day: date, scale: int = 1) -> dict:
    n = day.day * scale
    scored = day != date(2026, 10, 9)  # the 9th was not scored yet: sentiment nulls
    return {
        "tenant_id": tenant,
        "date": day,
        "conversations": n,
        "resolved": day.day % 3,
        "handoff": 1,
        "abandoned": day.day % 2,
        "open": 0,
        "feedback_up": day.day % 4,
        "feedback_down": 1,
        "sentiment_negative": day.day % 5 if scored else None,
        "sentiment_neutral": 2 if scored else None,
        "sentiment_positive": 1 if scored else None,
        "cost_usd": 0.01 * n,
    }


def expected_window(rows: list[dict], t: datetime, days: int) -> dict:
    """The reference: the days date(t)-days .. date(t)-1 (complete before t), summed in plain Python."""
    first, last = t.date() - timedelta(days=days), t.date() - timedelta(days=1)
    window = [r for r in rows if first <= r["date"] <= last]
    total = sum(r["conversations"] for r in window)
    closed = sum(r["resolved"] + r["handoff"] + r["abandoned"] for r in window)
    rated = sum(r["feedback_up"] + r["feedback_down"] for r in window)
    scored = [r for r in window if r["sentiment_negative"] is not None]
    labelled = sum(r["sentiment_negative"] + r["sentiment_neutral"] + r["sentiment_positive"] for r in scored)
    return {
        f"conversations_{days}d": total,
        f"deflection_rate_{days}d": sum(r["resolved"] for r in window) / closed if closed else None,
        f"satisfaction_{days}d": sum(r["feedback_up"] for r in window) / rated if rated else None,
        f"negative_sentiment_share_{days}d": sum(r["sentiment_negative"] for r in scored) / labelled
        if labelled
        else None,
        f"cost_per_conversation_{days}d_usd": sum(r["cost_usd"] for r in window) / total if total else None,
    }


@pytest.fixture
def daily_lake(tmp_path: Path) -> tuple[Lake, list[dict], list[dict]]:
    lake = Lake(tmp_path / "lake")
    a = [gold_row(A, day) for day in OCTOBER]
    b = [gold_row(B, day, scale=100) for day in OCTOBER]  # same days, other figures
    write(lake, GOLD_TENANT_DAILY, TENANT_DAILY_SCHEMA, a + b)
    return lake, a, b


def test_a_days_row_is_visible_only_once_the_day_is_over(daily_lake):
    lake, _, _ = daily_lake
    end_of_10th = datetime(2026, 10, 11, tzinfo=UTC)
    times = [end_of_10th - timedelta(microseconds=1), end_of_10th, datetime(2026, 10, 1, 12, tzinfo=UTC)]
    out = get_historical_features(
        lake=lake, entity_df=entities([(A, t) for t in times]), features=["tenant_daily_features:conversations_7d"]
    )
    # during the 10th: the 3rd .. 9th; from midnight on: the 4th .. 10th; on the 1st nothing is complete yet
    assert out["conversations_7d"].to_list() == [sum(range(3, 10)), sum(range(4, 11)), 0]
    # days are UTC days, whatever the zone of the timestamps: 00:30 in Berlin on the 11th is still the 10th in UTC
    berlin = entities([(A, datetime(2026, 10, 10, 22, 30, tzinfo=UTC))]).with_columns(
        pl.col("event_timestamp").dt.convert_time_zone("Europe/Berlin")
    )
    out = get_historical_features(lake=lake, entity_df=berlin, features=["tenant_daily_features:conversations_7d"])
    assert out["event_timestamp"].dt.hour().item() == 0 and out["conversations_7d"].item() == sum(range(3, 10))


def test_rolling_windows_count_exactly_the_right_days(daily_lake):
    lake, a, b = daily_lake
    times = [
        datetime(2026, 10, 1, 0, tzinfo=UTC),
        datetime(2026, 10, 2, 0, tzinfo=UTC),
        datetime(2026, 10, 9, 18, tzinfo=UTC),
        datetime(2026, 10, 10, 6, tzinfo=UTC),  # the window holds the 9th, which has no sentiment
        datetime(2026, 10, 17, 0, tzinfo=UTC),  # the window holds the 15th, which has no row
        datetime(2026, 10, 29, 13, tzinfo=UTC),
        datetime(2026, 11, 1, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 9, tzinfo=UTC),  # data ended: the 7-day window is empty, 28 days reach into October
        datetime(2026, 12, 31, 9, tzinfo=UTC),
    ]
    frame = entities([(tenant, t) for t in times for tenant in (A, B)])
    out = get_historical_features(lake=lake, entity_df=frame, features=DAILY)
    assert out.height == len(times) * 2
    for row in out.iter_rows(named=True):
        rows = a if row["tenant_id"] == A else b
        expected = expected_window(rows, row["event_timestamp"], 7) | expected_window(rows, row["event_timestamp"], 28)
        for name, value in expected.items():
            assert row[name] == (pytest.approx(value) if value is not None else None), (row["event_timestamp"], name)
    by_time = {(r["tenant_id"], r["event_timestamp"]): r for r in out.iter_rows(named=True)}
    gap = by_time[(A, datetime(2026, 10, 17, tzinfo=UTC))]
    assert gap["conversations_7d"] == 10 + 11 + 12 + 13 + 14 + 16  # the 10th .. 16th without the 15th
    assert by_time[(B, datetime(2026, 10, 17, tzinfo=UTC))]["conversations_7d"] == 100 * gap["conversations_7d"]
    assert by_time[(A, datetime(2026, 11, 20, 9, tzinfo=UTC))]["conversations_7d"] == 0
    assert by_time[(A, datetime(2026, 11, 20, 9, tzinfo=UTC))]["deflection_rate_7d"] is None
    assert by_time[(A, datetime(2026, 11, 20, 9, tzinfo=UTC))]["conversations_28d"] == sum(range(23, 32))
    ages = {t: by_time[(A, t)]["days_since_last_row"] for t in times}
    assert ages[times[0]] is None and ages[times[1]] == 0 and ages[times[2]] == 0
    assert ages[datetime(2026, 10, 17, tzinfo=UTC)] == 0 and ages[datetime(2026, 11, 20, 9, tzinfo=UTC)] == 19


def test_both_views_together_keep_the_entity_rows_order_and_columns(daily_lake):
    lake, _, _ = daily_lake
    write(lake, SILVER_MESSAGES, MESSAGES_SCHEMA, [message(A, "c_1", 1, "user", datetime(2026, 10, 20, tzinfo=UTC))])
    t = datetime(2026, 10, 20, 12, tzinfo=UTC)
    frame = entities([(A, "c_1", t), (A, "c_9", t), (A, "c_1", t), (B, "c_1", t)]).with_columns(
        label=pl.Series(["x", "y", "z", "w"])
    )
    out = get_historical_features(
        lake=lake,
        entity_df=frame,
        features=["tenant_daily_features:conversations_7d", "conversation_state:messages"],
    )
    assert out.columns == [*frame.columns, "conversations_7d", "messages"]
    assert out.select(frame.columns).equals(frame)
    assert out["messages"].to_list() == [1, 0, 1, 0]
    week = sum(range(13, 20)) - 15  # the 13th .. 19th, without the 15th
    assert out["conversations_7d"].to_list() == [week] * 3 + [100 * week]


# --- errors, catalog, pruning -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (["conversation_state:nope"], r"no feature 'nope'.*conversation_state:messages"),
        (["nope:messages"], r"unknown feature view 'nope'.*tenant_daily_features, conversation_state"),
        (["messages"], r'not "view:feature".*conversation_state:messages'),
        ([], r"no features asked for"),
        ("conversation_state:messages", r"list"),
    ],
)
def test_unknown_features_are_refused_naming_the_valid_ones(conversation_lake, features, message):
    with pytest.raises(ValueError, match=message):
        get_historical_features(lake=conversation_lake, entity_df=entities([(A, "c_1", T0)]), features=features)


def test_bad_entity_frames_are_refused(conversation_lake):
    with pytest.raises(ValueError, match=r"lacks columns \['conversation_id'\]"):
        get_historical_features(
            lake=conversation_lake, entity_df=entities([(A, T0)]), features=["conversation_state:messages"]
        )
    naive = entities([(A, "c_1", T0)]).with_columns(pl.col("event_timestamp").dt.replace_time_zone(None))
    with pytest.raises(ValueError, match="timezone-aware"):
        get_historical_features(lake=conversation_lake, entity_df=naive, features=["conversation_state:messages"])
    with pytest.raises(ValueError, match="already has columns"):
        get_historical_features(
            lake=conversation_lake,
            entity_df=entities([(A, "c_1", T0)]).with_columns(messages=pl.lit(1)),
            features=["conversation_state:messages"],
        )


def test_an_empty_entity_frame_gives_typed_empty_columns(conversation_lake):
    frame = entities([(A, "c_1", T0)]).clear()
    out = get_historical_features(lake=conversation_lake, entity_df=frame, features=STATE)
    assert out.height == 0
    assert out.schema["messages"] == pl.Int64 and out.schema["tiers_used"] == pl.List(pl.String)


def test_the_catalog_lists_every_view_and_feature_with_a_description():
    catalog = feature_catalog()
    assert set(catalog["view"]) == {"tenant_daily_features", "conversation_state"}
    assert catalog["name"].to_list() == feature_names()
    assert catalog["name"].n_unique() == catalog.height and catalog["feature"].n_unique() == catalog.height
    assert catalog.filter(pl.col("description").str.len_chars() < 10).is_empty()
    assert set(catalog.filter(pl.col("view") == "conversation_state")["keys"].explode()) == {
        "tenant_id",
        "conversation_id",
    }
    assert {"deflection_rate_7d", "satisfaction_28d", "thumbs_down", "tiers_used"} <= set(catalog["feature"])


def test_only_the_tenants_asked_for_are_read(conversation_lake):
    """Tenant B's message files are deleted behind the table's back: reading them would fail, so a query about
    tenant A that succeeds never opened them (partition pruning by tenant_id)."""
    folder = Path(conversation_lake.uri(SILVER_MESSAGES)) / f"tenant_id={B}"
    files = list(folder.glob("*.parquet"))
    assert files
    for file in files:
        file.unlink()
    frame = entities([(A, "c_1", T0 + 3600 * S)])
    assert get_historical_features(lake=conversation_lake, entity_df=frame, features=STATE)["messages"].item() == 4
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        get_historical_features(lake=conversation_lake, entity_df=entities([(B, "c_1", T0 + 3600 * S)]), features=STATE)


# --- the demo lakehouse -------------------------------------------------------------------------------------------


def test_the_demo_lakehouse_for_both_tenants(lakehouse, record_property):
    lake = lakehouse.lake
    messages = pl.from_arrow(
        lake.read(SILVER_MESSAGES, columns=["tenant_id", "conversation_id", "created_at", "feedback_at"])
    )
    # ~10k points: around every message (before, at, just after, once its feedback is in) and long after
    offsets = [-1_000_000, 0, 500_000, 2_000_000, 10_000_000, 30_000_000, 300_000_000, 3_600_000_000, 86_400_000_000]
    points = pl.concat(
        [
            messages.select(
                "tenant_id", "conversation_id", event_timestamp=pl.col("created_at") + pl.duration(microseconds=us)
            )
            for us in offsets
        ]
        + [
            messages.filter(pl.col("feedback_at").is_not_null()).select(
                "tenant_id", "conversation_id", event_timestamp=pl.col("feedback_at")
            )
        ]
    )
    points = pl.concat([points, points.head(10_000 - points.height)]) if points.height < 10_000 else points
    points = points.sample(fraction=1.0, shuffle=True, seed=1)  # order must not matter
    features = STATE + DAILY

    started = time.perf_counter()
    out = get_historical_features(lake=lake, entity_df=points, features=features)
    seconds = time.perf_counter() - started
    record_property("feature_store_seconds", seconds)
    print(f"\nfeature store: {points.height} entity rows, {len(features)} features, {seconds:.3f} s")

    assert out.height == points.height and out.select(points.columns).equals(points)
    assert set(out["tenant_id"]) == set(lakehouse.tenants)
    counts = [
        "messages",
        "customer_messages",
        "unconfident_answers",
        "thumbs_up",
        "thumbs_down",
        "negative_customer_messages",
        "seconds_since_start",
        "cost_usd",
    ]
    assert out.select(pl.col(counts).exclude("seconds_since_start").is_null().sum()).row(0) == (0,) * (len(counts) - 1)
    # a second before the first message may be before the start (its `started` event comes up to a second earlier)
    assert out.filter(pl.col("seconds_since_start").is_null() & (pl.col("messages") > 0)).is_empty()
    assert out.filter(pl.col("seconds_since_start") < 0).is_empty()
    steps = out.sort("tenant_id", "conversation_id", "event_timestamp").select(
        pl.col(counts).diff().over("tenant_id", "conversation_id").fill_null(0).min()
    )
    assert min(steps.row(0)) >= 0, "a count went down as t grew"
    assert out.filter(pl.col("customer_messages") > pl.col("messages")).is_empty()
    assert out.filter(pl.col("negative_customer_messages") > pl.col("customer_messages")).is_empty()
    for name in ["deflection_rate_7d", "satisfaction_7d", "negative_sentiment_share_28d", "deflection_rate_28d"]:
        assert out.filter((pl.col(name) < 0) | (pl.col(name) > 1)).is_empty(), name

    # a day after each conversation's last message, its state equals what silver says about the whole conversation
    conversations = pl.from_arrow(lake.read(SILVER_CONVERSATIONS))
    final = get_historical_features(
        lake=lake,
        entity_df=conversations.select(
            "tenant_id", "conversation_id", event_timestamp=pl.col("last_event_at") + pl.duration(days=1)
        ),
        features=STATE,
    ).join(conversations, on=["tenant_id", "conversation_id"])
    assert final.filter(
        (pl.col("messages") != pl.col("messages_right"))
        | (pl.col("customer_messages") != pl.col("user_messages"))
        | (pl.col("thumbs_down") != pl.col("feedback_down"))
        | (pl.col("thumbs_up") != pl.col("feedback_up"))
        | (pl.col("tiers_used") != pl.col("tiers"))
    ).is_empty()

    # the tenants' 28 days before the day after the traffic: what gold says, summed over those days
    gold = pl.from_arrow(lake.read(GOLD_TENANT_DAILY))
    end = gold["date"].max() + timedelta(days=1)
    at = datetime(end.year, end.month, end.day, tzinfo=UTC)
    daily = get_historical_features(
        lake=lake, entity_df=entities([(tenant, at) for tenant in lakehouse.tenants]), features=DAILY
    )
    for row in daily.iter_rows(named=True):
        window = gold.filter((pl.col("tenant_id") == row["tenant_id"]) & (pl.col("date") >= end - timedelta(days=28)))
        assert row["conversations_28d"] == window["conversations"].sum() > 0
        up, down = window["feedback_up"].sum(), window["feedback_down"].sum()
        assert row["satisfaction_28d"] == pytest.approx(up / (up + down))
