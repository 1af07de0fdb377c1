"""The outbox sensor: when events wait in the outbox and no lakehouse run is under way, start one."""

import dagster as dg

from core import outbox
from pipelines.resources import PostgresResource

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def outbox_sensor(job: dg.JobDefinition, *, interval_s: int = 30) -> dg.SensorDefinition:
    @dg.sensor(
        name="outbox_sensor",
        job=job,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts the lakehouse job when the outbox has events and no lakehouse run is active.",
    )
    def sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
        active = context.instance.get_runs(filters=dg.RunsFilter(job_name=job.name, statuses=ACTIVE), limit=1)
        if active:
            return dg.SkipReason(f"run {active[0].run_id} is still going")
        waiting = outbox.pending(postgres.dsn)
        if waiting == 0:
            return dg.SkipReason("the outbox is empty")
        return dg.RunRequest(tags={"parley/trigger": "outbox", "parley/pending": str(waiting)})

    return sensor
