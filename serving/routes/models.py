"""Custom models: a tenant's labelled intent examples, and training jobs the pipelines run.

Training never runs in the serving tier: `POST /v1/models/intent/train` queues a job (202 with its id) that the
pipelines' training sensor picks up; `GET /v1/models/jobs/{id}` follows it to its MLflow run, metrics and whether the
new model became the champion.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from core import intents
from core.schemas import IntentExamples, IntentExamplesAdded, IntentExamplesCreate, TrainingJob
from core.tenancy import Permission as P
from serving.deps import DbDep, TenantScope, tenant_access
from serving.problems import Problem, problem_responses

router = APIRouter(prefix="/v1", tags=["models"], responses=problem_responses(401, 403, 422, 429))


def _summary(counts: dict[str, int]) -> dict:
    why_not = intents.trainable(counts)
    return {"intents": counts, "total": sum(counts.values()), "trainable": why_not is None, "why_not": why_not}


@router.post(
    "/intents/examples",
    status_code=status.HTTP_201_CREATED,
    summary="Add labelled examples (bulk, up to 10,000); the same text and intent twice is kept once",
)
async def add_examples(
    body: IntentExamplesCreate, scope: Annotated[TenantScope, tenant_access(P.MODELS_WRITE)], db: DbDep
) -> IntentExamplesAdded:
    pairs = list(dict.fromkeys((example.text, example.intent) for example in body.examples))
    async with db.transaction() as conn:
        added = await intents.add_examples(conn, tenant_id=scope.tenant_id, examples=pairs, actor=scope.caller.actor)
        counts = await intents.example_counts(conn, tenant_id=scope.tenant_id)
    return IntentExamplesAdded(added=added, duplicates=len(body.examples) - added, **_summary(counts))


@router.get("/intents/examples", summary="How many examples the tenant has per intent, and whether it can train")
async def example_counts(scope: Annotated[TenantScope, tenant_access(P.MODELS_READ)], db: DbDep) -> IntentExamples:
    async with db.connection() as conn:
        return IntentExamples(**_summary(await intents.example_counts(conn, tenant_id=scope.tenant_id)))


@router.post(
    "/models/intent/train",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue training of the tenant's intent model on its examples (the pipelines run it)",
)
async def train_intent(scope: Annotated[TenantScope, tenant_access(P.MODELS_WRITE)], db: DbDep) -> TrainingJob:
    async with db.transaction() as conn:
        why_not = intents.trainable(await intents.example_counts(conn, tenant_id=scope.tenant_id))
        if why_not is not None:
            raise Problem(422, f"Not enough examples to train: {why_not}.", kind="not-trainable")
        job = await intents.queue_training(conn, tenant_id=scope.tenant_id, kind="intent", actor=scope.caller.actor)
    return TrainingJob(**job)


@router.get("/models/jobs", summary="The tenant's training jobs, newest first")
async def list_jobs(
    scope: Annotated[TenantScope, tenant_access(P.MODELS_READ)],
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[TrainingJob]:
    async with db.connection() as conn:
        return [TrainingJob(**job) for job in await intents.list_jobs(conn, tenant_id=scope.tenant_id, limit=limit)]


@router.get("/models/jobs/{job_id}", summary="One training job", responses=problem_responses(404))
async def get_job(job_id: str, scope: Annotated[TenantScope, tenant_access(P.MODELS_READ)], db: DbDep) -> TrainingJob:
    async with db.connection() as conn:
        job = await intents.get_job(conn, tenant_id=scope.tenant_id, job_id=job_id)
    if job is None:
        raise Problem(404, f"No training job '{job_id}'.", kind="not-found")
    return TrainingJob(**job)
