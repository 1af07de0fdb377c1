"""A tenant's labelled intent examples and its model-training jobs.

Examples come in bulk (`POST /v1/intents/examples`); the same (text, intent) twice is kept once. Training is asked
for through the API and done by the pipelines (a job queue in PostgreSQL: the serving tier never trains), which claim
one job at a time with SKIP LOCKED, so two trainers never take the same job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core.tenancy import new_id

# Examples labelled with this intent are what the bot should not answer: the model learns an explicit out-of-scope
# class from them (beside its confidence threshold).
OOS_INTENT = "oos"
MIN_EXAMPLES_PER_INTENT = 5
MIN_INTENTS = 2
_JOB_COLUMNS = (
    "id, tenant_id, kind, status, requested_by, requested_at, started_at, finished_at, run_id, model_uri, metrics, "
    "promoted, detail, examples"
)


async def add_examples(
    conn: AsyncConnection, *, tenant_id: str, examples: Sequence[tuple[str, str]], actor: str
) -> int:
    """Store (text, intent) pairs; returns how many were new. Each new one also goes to the outbox, in the same
    statement, so the lake (where training reads them) gets every example exactly once."""
    texts = [text.strip() for text, _ in examples]
    intents = [intent.strip() for _, intent in examples]
    cursor = await conn.execute(
        """WITH added AS (
               INSERT INTO intent_examples (tenant_id, text, intent, created_by)
               SELECT %(tenant)s, text, intent, %(actor)s
                 FROM unnest(%(texts)s::text[], %(intents)s::text[]) AS e(text, intent)
               ON CONFLICT (tenant_id, text, intent) DO NOTHING
               RETURNING id, text, intent, created_at
           )
           INSERT INTO outbox (event_id, tenant_id, type, payload, created_at)
           SELECT gen_random_uuid(), %(tenant)s, 'intent_example.added',
                  jsonb_build_object('example_id', id, 'text', text, 'intent', intent, 'added_by', %(actor)s),
                  created_at
             FROM added""",
        {"tenant": tenant_id, "actor": actor, "texts": texts, "intents": intents},
    )
    return cursor.rowcount


async def example_counts(conn: AsyncConnection, *, tenant_id: str) -> dict[str, int]:
    cursor = await conn.execute(
        "SELECT intent, count(*) AS n FROM intent_examples WHERE tenant_id = %s GROUP BY intent ORDER BY intent",
        (tenant_id,),
    )
    return {row["intent"]: row["n"] for row in await cursor.fetchall()}


async def list_examples(conn: AsyncConnection, *, tenant_id: str) -> list[tuple[str, str]]:
    cursor = await conn.execute(
        "SELECT text, intent FROM intent_examples WHERE tenant_id = %s ORDER BY id", (tenant_id,)
    )
    return [(row["text"], row["intent"]) for row in await cursor.fetchall()]


def trainable(counts: dict[str, int]) -> str | None:
    """Why these example counts cannot train a model, or None when they can."""
    enough = {intent for intent, n in counts.items() if n >= MIN_EXAMPLES_PER_INTENT}
    if len(enough) < MIN_INTENTS:
        return (
            f"needs at least {MIN_INTENTS} intents with {MIN_EXAMPLES_PER_INTENT} examples each; "
            f"has {len(enough)} ({sum(counts.values())} examples over {len(counts)} intents)"
        )
    return None


async def queue_training(conn: AsyncConnection, *, tenant_id: str, kind: str, actor: str) -> dict[str, Any]:
    """Queue a training job; it records how many examples the tenant has now, which the lake must hold before the
    pipelines start it."""
    cursor = await conn.execute(
        f"""INSERT INTO training_jobs (id, tenant_id, kind, requested_by, examples)
            SELECT %s, %s, %s, %s, (SELECT count(*) FROM intent_examples WHERE tenant_id = %s)
            RETURNING {_JOB_COLUMNS}""",
        (new_id("job"), tenant_id, kind, actor, tenant_id),
    )
    return await cursor.fetchone()


async def get_job(conn: AsyncConnection, *, tenant_id: str, job_id: str) -> dict[str, Any] | None:
    cursor = await conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM training_jobs WHERE tenant_id = %s AND id = %s", (tenant_id, job_id)
    )
    return await cursor.fetchone()


async def list_jobs(conn: AsyncConnection, *, tenant_id: str, limit: int = 50) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM training_jobs WHERE tenant_id = %s ORDER BY requested_at DESC LIMIT %s",
        (tenant_id, limit),
    )
    return await cursor.fetchall()


# The pipelines' training run reports on its job in three steps: started, its MLflow run logged, finished.
START = "UPDATE training_jobs SET status = 'running', started_at = now() WHERE id = %(id)s"
LOGGED = (
    "UPDATE training_jobs SET run_id = %(run_id)s, model_uri = %(model_uri)s, metrics = %(metrics)s WHERE id = %(id)s"
)
FINISH = """
UPDATE training_jobs SET status = %(status)s, finished_at = now(), run_id = %(run_id)s, model_uri = %(model_uri)s,
       metrics = %(metrics)s, promoted = %(promoted)s, detail = %(detail)s
 WHERE id = %(id)s
"""


def finish_params(
    *,
    job_id: str,
    succeeded: bool,
    run_id: str | None = None,
    model_uri: str | None = None,
    metrics: dict[str, float] | None = None,
    promoted: bool | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    return {
        "id": job_id,
        "status": "succeeded" if succeeded else "failed",
        "run_id": run_id,
        "model_uri": model_uri,
        "metrics": Jsonb(metrics) if metrics is not None else None,
        "promoted": promoted,
        "detail": detail,
    }
