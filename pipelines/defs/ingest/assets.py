"""Bronze: the outbox drained into Delta `bronze/events`, exactly once (core/outbox.py), by a sensor or by hand."""

import dagster as dg

from core import outbox
from pipelines.keys import BRONZE
from pipelines.resources import LakeResource, PostgresResource


@dg.asset(
    key=BRONZE,
    group_name="bronze",
    kinds={"delta", "postgres"},
    description="Every outbox event, once, partitioned by tenant and the event's date (UTC).",
)
def bronze_events(lake: LakeResource, postgres: PostgresResource) -> dg.MaterializeResult:
    drained = outbox.drain(postgres.dsn, lake.lake())
    if drained.busy:
        raise dg.Failure("another drain holds the outbox lock; this run drained nothing")
    return dg.MaterializeResult(
        metadata={
            "events": drained.events,
            "batches": drained.batches,
            "from_outbox_id": drained.start,
            "to_outbox_id": drained.watermark,
            "repaired_mark": drained.repaired,
            "events_per_second": round(drained.events / drained.seconds) if drained.seconds else 0,
        }
    )
