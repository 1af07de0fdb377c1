"""Draining the outbox into the lake's bronze events, exactly once.

The serving tier writes an event row in the same transaction as what it reports. The drain moves them to Delta
(`bronze/events`) in id order and deletes what landed:

1. a horizon: under a brief SHARE lock on the outbox (it waits for the transactions writing to it, and holds new ones
   back for a moment) the highest id is read, so every id up to it is committed or will never exist; ids are handed
   out before commit, so without this a slow transaction could commit a lower id after a faster one was drained;
2. batches up to the horizon, each appended to bronze in one Delta commit that also records the batch's last id as
   the app transaction `parley.outbox` (the data and the watermark land together, or neither does);
3. the mark: drained rows are deleted and `outbox_watermark` moves, in one PostgreSQL transaction.

A crash between 2 and 3 leaves rows the lake already has: the next drain reads the watermark from the lake's log,
deletes them, and goes on. A crash before 2 commits loses nothing. One drain runs at a time (an advisory lock).

An event's time is its outbox row's `created_at`, which the writers set to the time of what they report (the
message's, the usage row's; the same as the payload's `at`): a writer of backdated events, such as the demo
generator, sets it to when the event happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl
import psycopg
import pyarrow as pa
from adbc_driver_postgresql import dbapi as adbc

from core.lake import BRONZE_EVENTS, Lake

APP_ID = "parley.outbox"
CONSUMER = "lake"
DEFAULT_BATCH = 200_000
_LOCK_KEY = 0x7061726C6579  # "parley": the drain's advisory lock

BRONZE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("outbox_id", pa.int64()),
        ("tenant_id", pa.string()),
        ("type", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("payload", pa.string()),
        ("date", pa.date32()),
    ]
)


@dataclass(frozen=True)
class Drained:
    events: int
    batches: int
    watermark: int  # the last outbox id now in the lake
    start: int = 0  # the watermark before this drain: it brought the ids in (start, watermark]
    repaired: bool = False  # the lake was ahead of the mark (a crash after a commit) and the mark caught up
    busy: bool = False  # another drain holds the lock; nothing was done
    seconds: float = 0.0


def watermark(conn: psycopg.Connection, lake: Lake) -> tuple[int, bool]:
    """How far the lake has the outbox, repairing the mark when the lake is ahead; (watermark, repaired)."""
    in_lake = lake.app_version(BRONZE_EVENTS, APP_ID) or 0
    row = conn.execute("SELECT drained_to FROM outbox_watermark WHERE consumer = %s", (CONSUMER,)).fetchone()
    marked = row[0] if row else 0
    if in_lake > marked:
        _mark(conn, in_lake)
        return in_lake, True
    return marked, False


def _mark(conn: psycopg.Connection, drained_to: int) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM outbox WHERE id <= %s", (drained_to,))
        conn.execute(
            """INSERT INTO outbox_watermark (consumer, drained_to) VALUES (%s, %s)
               ON CONFLICT (consumer) DO UPDATE SET drained_to = excluded.drained_to, updated_at = now()""",
            (CONSUMER, drained_to),
        )


def _horizon(conn: psycopg.Connection) -> int:
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '5s'")
        conn.execute("LOCK TABLE outbox IN SHARE MODE")
        return conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]


_BATCH = """SELECT id AS outbox_id, event_id::text AS event_id, tenant_id, type, created_at, payload::text AS payload
             FROM outbox WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"""


def _read_batch(reader, *, after: int, upto: int, limit: int) -> pa.Table:
    # ADBC streams the rows as Arrow (libpq's binary COPY): a fifth of the time psycopg takes to build them row by row.
    with reader.cursor() as cursor:
        cursor.execute(_BATCH, (after, upto, limit))
        return to_bronze(cursor.fetch_arrow_table())


def to_bronze(raw: pa.Table) -> pa.Table:
    """Outbox rows (outbox_id, event_id, tenant_id, type, created_at, payload) as bronze rows."""
    frame = pl.from_arrow(raw)
    created = pl.col("created_at").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    frame = frame.with_columns(
        recorded_at=created,
        occurred_at=created,
        ingested_at=pl.lit(_now_us(), dtype=pl.Int64).pipe(pl.from_epoch, time_unit="us").dt.replace_time_zone("UTC"),
    ).with_columns(date=pl.col("occurred_at").dt.date())
    return frame.select(BRONZE_SCHEMA.names).to_arrow().cast(BRONZE_SCHEMA)


def _now_us() -> int:
    return time.time_ns() // 1000


def drain(
    url: str,
    lake: Lake,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int = 1000,
    after_commit: Callable[[int], None] | None = None,
) -> Drained:
    """Move every committed outbox event to bronze. `after_commit(upper_id)` runs after each Delta commit, before the
    mark: the place a crash would hurt, where the tests kill the process to prove it does not."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn, adbc.connect(url) as reader:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()[0]:
            return Drained(0, 0, 0, busy=True)
        try:
            done, repaired = watermark(conn, lake)
            start = done
            horizon = _horizon(conn)
            events = batches = 0
            # The next batch is read while this one is written and marked: PostgreSQL and delta-rs each keep a core.
            with ThreadPoolExecutor(1, thread_name_prefix="outbox-read") as ahead:
                upcoming = ahead.submit(_read_batch, reader, after=done, upto=horizon, limit=batch_size)
                while done < horizon and batches < max_batches:
                    batch = upcoming.result()
                    upper = horizon if batch.num_rows == 0 else batch.column("outbox_id")[-1].as_py()
                    if upper < horizon:
                        upcoming = ahead.submit(_read_batch, reader, after=upper, upto=horizon, limit=batch_size)
                    if batch.num_rows:  # else only rolled-back ids remained below the horizon
                        lake.append(BRONZE_EVENTS, batch, app_id=APP_ID, version=upper)
                        if after_commit is not None:
                            after_commit(upper)
                    _mark(conn, upper)
                    done, events, batches = upper, events + batch.num_rows, batches + 1
            return Drained(events, batches, done, start, repaired, seconds=time.perf_counter() - started)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def pending(url: str) -> int:
    """Outbox events not yet drained (what the sensor looks at)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
