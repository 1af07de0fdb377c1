"""Parley's Dagster definitions: `dagster dev -w workspace.yaml` shows this graph.

outbox → bronze/events → silver/{conversations,messages,usage,intent_examples} → enriched/{message_sentiment,
conversation_summaries,conversation_topics} → gold/{tenant_daily,intent_daily}, with blocking Great Expectations checks
on each layer; gold → metrics/daily (the dashboards' PostgreSQL store); silver and sentiment → routing/policy (the
per-intent routes the router reads); silver/intent_examples → models/intent →
models/intent_champion per tenant (MLflow).
Resources read Parley's Settings (PARLEY_*) when a run starts, never at import.
"""

import dagster as dg

from pipelines.defs.dbt.assets import DbtResource, warehouse
from pipelines.defs.enrich.assets import conversation_summaries, conversation_topics, message_sentiment
from pipelines.defs.gold.assets import gold
from pipelines.defs.ingest.assets import bronze_events
from pipelines.defs.ingest.sensors import outbox_sensor
from pipelines.defs.maintenance.jobs import lake_maintenance
from pipelines.defs.metrics.assets import metrics_store
from pipelines.defs.models.assets import TENANTS, intent_champion, intent_model
from pipelines.defs.models.sensors import training_failures, training_jobs_sensor, weekly_retraining
from pipelines.defs.quality.checks import CHECKS
from pipelines.defs.routing.assets import routing_policy
from pipelines.defs.silver.assets import silver, tenants_snapshot
from pipelines.resources import LakeResource, LlmResource, ModelsResource, PostgresResource

LAKE_ASSETS = [
    bronze_events,
    tenants_snapshot,
    silver,
    message_sentiment,
    conversation_summaries,
    conversation_topics,
    gold,
    metrics_store,
    routing_policy,
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

# A tenant's intent model: trained from its examples in the lake, evaluated, promoted if better.
intent_training = dg.define_asset_job(
    "intent_training",
    selection=dg.AssetSelection.assets(intent_model, intent_champion),
    partitions_def=TENANTS,
    description="Train a tenant's intent model on its labelled examples, evaluate it, promote it if it is better.",
    tags={"dagster/max_retries": 0, "parley/lane": "training"},
)

defs = dg.Definitions(
    assets=[*LAKE_ASSETS, warehouse, intent_model, intent_champion],
    asset_checks=CHECKS,
    jobs=[lakehouse, warehouse_job, lake_maintenance, intent_training],
    sensors=[outbox_sensor(lakehouse), training_jobs_sensor(intent_training), training_failures(intent_training)],
    schedules=[
        weekly_retraining(intent_training),
        # Conversations left open are decided (resolved or abandoned) even when no new event arrives.
        dg.ScheduleDefinition(job=lakehouse, cron_schedule="17 * * * *", name="lakehouse_hourly"),
        dg.ScheduleDefinition(job=warehouse_job, cron_schedule="37 * * * *", name="warehouse_hourly"),
        dg.ScheduleDefinition(job=lake_maintenance, cron_schedule="40 3 * * *", name="lake_maintenance_nightly"),
    ],
    resources={
        "lake": LakeResource(),
        "postgres": PostgresResource(),
        "llm": LlmResource(),
        "dbt": DbtResource(),
        "models": ModelsResource(),
    },
)
