"""Lake upkeep: compact the small files that appends and per-tenant rewrites leave, then vacuum what is unreferenced."""

import dagster as dg

from core.lake import TABLES
from pipelines.resources import LakeResource

RETENTION_HOURS = 168  # a week of time travel, and longer than any reader runs


@dg.op(description="optimize.compact() then vacuum(168 h) on every lake table")
def compact_and_vacuum(context: dg.OpExecutionContext, lake: LakeResource) -> None:
    store = lake.lake()
    for table in TABLES:
        compacted = store.compact(table)
        removed = store.vacuum(table, retention_hours=RETENTION_HOURS)
        context.log.info(
            f"{table.name}: {compacted.get('numFilesRemoved', 0)} files compacted into "
            f"{compacted.get('numFilesAdded', 0)}, {len(removed)} old files vacuumed"
        )


@dg.job(description="Compact and vacuum the lake")
def lake_maintenance():
    compact_and_vacuum()
