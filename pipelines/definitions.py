"""Parley's Dagster definitions: `dagster dev -w workspace.yaml` shows this graph.

outbox → bronze/events → silver/{conversations,messages} → enriched/{message_sentiment,conversation_summaries,
conversation_topics} → gold/{tenant_daily,intent_daily}, with blocking Great Expectations checks on each layer.
Resources read Parley's Settings (PARLEY_*) when a run starts, never at import.
"""

import dagster as dg

from pipelines.defs.dbt.assets import DbtResource, warehouse
from pipelines.defs.enrich.assets import conversation_summaries, conversation_topics, message_sentiment
from pipelines.defs.gold.assets import gold
from pipelines.defs.ingest.assets import bronze_events
from pipelines.defs.ingest.sensors import outbox_sensor
from pipelines.defs.maintenance.jobs import lake_maintenance
from pipelines.defs.quality.checks import CHECKS
from pipelines.defs.silver.assets import silver, tenants_snapshot
from pipelines.resources import LakeResource, LlmResource, PostgresResource

LAKE_ASSETS = [
    bronze_events,
    tenants_snapshot,
    silver,
    message_sentiment,
    conversation_summaries,
    conversation_topics,
    gold,
]

lakehouse = dg.define_asset_job(
    "lakehouse",
    selection=dg.AssetSelection.assets(*LAKE_ASSETS),
    description="Drain the outbox into bronze, rebuild what changed in silver, the enrichments and gold, checked.",
    # One lakehouse run at a time (the instance's queue limits the lane to 1; the drain also takes a lock).
    tags={"dagster/max_retries": 0, "parley/lane": "lake"},
)

# The analysts' marts (dbt, over the lake): hourly, after the lakehouse run.
warehouse_job = dg.define_asset_job(
    "warehouse_build", selection=dg.AssetSelection.assets(warehouse), description="dbt build of the analysts' marts"
)

defs = dg.Definitions(
    assets=[*LAKE_ASSETS, warehouse],
    asset_checks=CHECKS,
    jobs=[lakehouse, warehouse_job, lake_maintenance],
    sensors=[outbox_sensor(lakehouse)],
    schedules=[
        # Conversations left open are decided (resolved or abandoned) even when no new event arrives.
        dg.ScheduleDefinition(job=lakehouse, cron_schedule="17 * * * *", name="lakehouse_hourly"),
        dg.ScheduleDefinition(job=warehouse_job, cron_schedule="37 * * * *", name="warehouse_hourly"),
        dg.ScheduleDefinition(job=lake_maintenance, cron_schedule="40 3 * * *", name="lake_maintenance_nightly"),
    ],
    resources={"lake": LakeResource(), "postgres": PostgresResource(), "llm": LlmResource(), "dbt": DbtResource()},
)
