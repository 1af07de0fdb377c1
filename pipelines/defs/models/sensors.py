"""Training runs on demand and on schedule.

- `training_jobs_sensor`: a job queued through the API (`POST /v1/models/intent/train`) starts a training run for its
  tenant once the lake holds every example the tenant had when it queued the job (the examples reach the lake through
  the outbox, so a job never trains on less than its caller saw). One run per job: the job id is the run key.
- `training_failures`: a training run that fails marks its job failed, with the reason.
- `weekly_retraining`: every tenant with trainable examples in the lake, each Monday night.
"""

import dagster as dg
import polars as pl

from core import intents
from core.lake import SILVER_INTENT_EXAMPLES
from pipelines.defs.models.assets import TENANTS, TRAINING_JOB_TAG
from pipelines.resources import LakeResource, PostgresResource

MAX_JOBS_PER_TICK = 20


def examples_in_lake(lake, tenant_ids: list[str] | None = None) -> dict[str, dict[str, int]]:
    """{tenant: {intent: examples}} in silver/intent_examples."""
    data = lake.read(SILVER_INTENT_EXAMPLES, tenant_ids=tenant_ids, columns=["tenant_id", "intent"])
    if data is None or data.num_rows == 0:
        return {}
    counts: dict[str, dict[str, int]] = {}
    for tenant, intent, n in pl.from_arrow(data).group_by("tenant_id", "intent").len().iter_rows():
        counts.setdefault(tenant, {})[intent] = n
    return counts


def _partitions(context, tenant_ids) -> list[dg.AddDynamicPartitionsRequest]:
    known = set(context.instance.get_dynamic_partitions(TENANTS.name))
    new = sorted(set(tenant_ids) - known)
    return [TENANTS.build_add_request(new)] if new else []


def training_jobs_sensor(job: dg.JobDefinition, *, interval_s: int = 15) -> dg.SensorDefinition:
    @dg.sensor(
        name="training_jobs_sensor",
        job=job,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts a training run for each queued training job once the lake holds its examples.",
    )
    def sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource, lake: LakeResource):
        with postgres.connect() as conn:
            queued = conn.execute(
                """SELECT id, tenant_id, examples FROM training_jobs
                    WHERE status = 'queued' AND kind = 'intent' ORDER BY requested_at LIMIT %s""",
                (MAX_JOBS_PER_TICK,),
            ).fetchall()
        if not queued:
            return dg.SkipReason("no queued training job")
        in_lake = examples_in_lake(lake.lake(), sorted({tenant for _, tenant, _ in queued}))
        ready = [
            (job_id, tenant) for job_id, tenant, wanted in queued if sum(in_lake.get(tenant, {}).values()) >= wanted
        ]
        if not ready:
            return dg.SkipReason(f"{len(queued)} queued job(s) wait for their examples to reach the lake")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(run_key=job_id, partition_key=tenant, tags={TRAINING_JOB_TAG: job_id})
                for job_id, tenant in ready
            ],
            dynamic_partitions_requests=_partitions(context, [tenant for _, tenant in ready]),
        )

    return sensor


def training_failures(job: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="training_failures",
        monitored_jobs=[job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks the training job of a failed training run failed, with the reason.",
    )
    def sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource):
        job_id = context.dagster_run.tags.get(TRAINING_JOB_TAG)
        if not job_id:
            return
        failure = context.failure_event.message or "the training run failed"
        with postgres.connect() as conn:
            # Only a job still open: the run's own steps have already said why when they could.
            conn.execute(
                intents.FINISH + " AND status IN ('queued', 'running')",
                intents.finish_params(job_id=job_id, succeeded=False, detail=failure[:2000]),
            )

    return sensor


def weekly_retraining(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="weekly_retraining",
        job=job,
        cron_schedule="23 2 * * 1",
        description="Retrains every tenant with trainable examples in the lake; the champion moves only if beaten.",
    )
    def schedule(context: dg.ScheduleEvaluationContext, lake: LakeResource):
        tenants = sorted(
            tenant for tenant, counts in examples_in_lake(lake.lake()).items() if intents.trainable(counts) is None
        )
        if not tenants:
            return dg.SkipReason("no tenant has trainable examples in the lake")
        week = context.scheduled_execution_time.strftime("%G-W%V")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{tenant}:{week}", partition_key=tenant) for tenant in tenants],
            dynamic_partitions_requests=_partitions(context, tenants),
        )

    return schedule
