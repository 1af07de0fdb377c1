"""Tenants' intent models trained by Dagster for real: labelled examples go through the outbox into the lake, a queued
job starts a training run once the lake holds them, the challenger is evaluated and promoted only if it is better,
and two tenants never train on, or get, each other's examples or models."""

from __future__ import annotations

import asyncio
import csv
import random
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from core import intents, tenancy
from core.lake import SILVER_INTENT_EXAMPLES, Lake
from core.registry import Registry
from tests.lake.conftest import new_platform_database, run_lakehouse

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "banking77"
INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed", "pin_blocked")


def banking(per_intent: int, *, skip: int = 0) -> list[tuple[str, str]]:
    with (DATA / "train.csv").open(newline="") as file:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(file) if r["category"] in INTENTS]
    kept, seen = [], {}
    for text, label in rows:
        seen[label] = seen.get(label, 0) + 1
        if skip < seen[label] <= skip + per_intent:
            kept.append((text, label))
    return kept


async def _in_db(url, work):
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn, conn.transaction():
        return await work(conn)


def add(url, tenant_id, examples) -> int:
    return asyncio.run(
        _in_db(url, lambda conn: intents.add_examples(conn, tenant_id=tenant_id, examples=examples, actor="test"))
    )


def queue(url, tenant_id) -> dict:
    return asyncio.run(
        _in_db(url, lambda conn: intents.queue_training(conn, tenant_id=tenant_id, kind="intent", actor="test"))
    )


def job(url, job_id) -> dict:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM training_jobs WHERE id = %s", (job_id,)).fetchone()


def new_tenant(url, name) -> str:
    async def create(conn):
        return (await tenancy.create_tenant(conn, name=name, actor="test")).id

    return asyncio.run(_in_db(url, create))


@pytest.fixture(scope="module")
def platform(pg_server, tmp_path_factory, models_dir):
    url = new_platform_database(pg_server, "training")
    root = tmp_path_factory.mktemp("training-lake")
    store = tmp_path_factory.mktemp("training-mlflow")
    return {
        "url": url,
        "root": root,
        "lake": Lake(str(root)),
        "registry": Registry(f"sqlite:///{store / 'mlflow.db'}"),
        "models_dir": models_dir,
    }


@pytest.fixture(scope="module")
def instance():
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def resources(platform):
    from pipelines.resources import LakeResource, ModelsResource, PostgresResource

    return {
        "lake": LakeResource(root=str(platform["root"])),
        "postgres": PostgresResource(url=platform["url"]),
        "models": ModelsResource(
            mlflow_uri=platform["registry"].uri, models_dir=str(platform["models_dir"]), intent_recipe="frozen"
        ),
    }


def train(platform, instance, tenant_id, *, job_id=None) -> dg.ExecuteInProcessResult:
    from pipelines.defs.models.assets import TENANTS, TRAINING_JOB_TAG, intent_champion, intent_model

    instance.add_dynamic_partitions(TENANTS.name, [tenant_id])
    return dg.materialize(
        [intent_model, intent_champion],
        partition_key=tenant_id,
        resources=resources(platform),
        instance=instance,
        tags={TRAINING_JOB_TAG: job_id} if job_id else None,
        raise_on_error=False,
    )


def sensor_requests(platform, instance) -> list[dg.RunRequest] | str:
    from pipelines.definitions import intent_training
    from pipelines.defs.models.sensors import training_jobs_sensor

    with dg.build_sensor_context(instance=instance, resources=resources(platform)) as context:
        result = training_jobs_sensor(intent_training)(context)
    if isinstance(result, dg.SkipReason):
        return result.skip_message
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result.run_requests


def evaluation(result) -> dg.AssetCheckEvaluation:
    (check,) = result.get_asset_check_evaluations()
    return check


def test_a_queued_job_waits_for_the_lake_then_trains_and_promotes_its_tenants_model_only(platform, instance):
    acme, zeta = new_tenant(platform["url"], "Acme Training"), new_tenant(platform["url"], "Zeta Training")
    email = ("my card never came, write to me at jo.doe@example.com", "card_arrival")
    assert add(platform["url"], acme, [*banking(12), email]) == 61
    assert add(platform["url"], acme, banking(12)) == 0, "the same examples again add nothing"
    zeta_rows = [(text, f"z_{label}") for text, label in banking(8, skip=20)]
    add(platform["url"], zeta, zeta_rows)
    queued = queue(platform["url"], acme)
    assert queued["examples"] == 61
    assert "wait for their examples" in sensor_requests(platform, instance), "the lake does not hold them yet"

    assert run_lakehouse(platform["root"], platform["url"]).success
    lake_rows = platform["lake"].read(SILVER_INTENT_EXAMPLES).to_pylist()
    assert sum(r["tenant_id"] == acme for r in lake_rows) == 61 and sum(r["tenant_id"] == zeta for r in lake_rows) == 40
    assert not {r["text"] for r in lake_rows if r["tenant_id"] == zeta} & {t for t, _ in banking(12)}
    redacted = next(r["text"] for r in lake_rows if r["text"].startswith("my card never came"))
    assert "jo.doe@example.com" not in redacted, "silver texts are PII redacted"

    (request,) = sensor_requests(platform, instance)
    assert request.partition_key == acme and request.run_key == queued["id"]
    result = train(platform, instance, acme, job_id=queued["id"])
    assert result.success and evaluation(result).passed
    registry = platform["registry"]
    champion = registry.champion(kind="intent", tenant_id=acme)
    assert champion is not None and champion.version == 1 and champion.metrics["macro_f1"] > 0.8
    assert (
        registry.champion(kind="intent", tenant_id=zeta) is None
        and registry.versions(kind="intent", tenant_id=zeta) == []
    )
    finished = job(platform["url"], queued["id"])
    assert finished["status"] == "succeeded" and finished["promoted"] is True
    assert finished["model_uri"] == f"models:/intent__{acme}/1" and finished["metrics"]["macro_f1"] > 0.8

    zeta_result = train(platform, instance, zeta)
    assert zeta_result.success
    folder = registry.download(kind="intent", tenant_id=zeta, version=1, into=platform["root"] / "zeta-model")
    from models.intent.model import IntentModel

    zeta_model = IntentModel.load(folder / "artifacts" / "model")
    assert set(zeta_model.labels) == {f"z_{label}" for label in INTENTS}, "trained on its own examples only"


def test_a_worse_challenger_is_not_promoted_and_a_broken_one_fails_its_evaluation(platform, instance):
    from pipelines.definitions import intent_training
    from pipelines.defs.models.sensors import training_failures

    steady, broken = new_tenant(platform["url"], "Steady Training"), new_tenant(platform["url"], "Broken Training")
    add(platform["url"], steady, banking(12))
    rng = random.Random(3)
    add(platform["url"], broken, [(text, rng.choice(INTENTS)) for text, _ in banking(12, skip=30)])
    assert run_lakehouse(platform["root"], platform["url"]).success
    assert train(platform, instance, steady).success
    first = platform["registry"].champion(kind="intent", tenant_id=steady)

    # Mislabelled examples make the next model worse on its held-out rows: logged, but not promoted.
    add(
        platform["url"],
        steady,
        [(text, INTENTS[(INTENTS.index(label) + 1) % 5]) for text, label in banking(6, skip=12)],
    )
    assert run_lakehouse(platform["root"], platform["url"]).success
    second = train(platform, instance, steady)
    assert second.success
    promotion = second.asset_materializations_for_node("models__intent_champion")[0].metadata
    assert promotion["promoted"].value is False and "does not beat" in promotion["reason"].value
    assert platform["registry"].champion(kind="intent", tenant_id=steady).version == first.version == 1
    assert [v.version for v in platform["registry"].versions(kind="intent", tenant_id=steady)] == [1, 2]

    queued = queue(platform["url"], broken)
    failed = train(platform, instance, broken, job_id=queued["id"])
    assert not failed.success and not evaluation(failed).passed
    reported = job(platform["url"], queued["id"])
    assert reported["status"] == "failed" and "failed its evaluation: held-out macro-F1" in reported["detail"]
    assert platform["registry"].champion(kind="intent", tenant_id=broken) is None, "a broken model is never promoted"
    run = instance.get_run_by_id(failed.run_id)
    failure = next(e for e in instance.all_logs(failed.run_id) if e.dagster_event and e.dagster_event.is_failure)
    with dg.build_run_status_sensor_context(
        sensor_name="training_failures",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"postgres": resources(platform)["postgres"]},
    ) as context:
        training_failures(intent_training)(context.for_run_failure())
    assert job(platform["url"], queued["id"]) == reported, "the failure sensor keeps the run's own reason"

    # A run that died before its steps could say why still fails its job, with the run's failure message.
    lost = queue(platform["url"], broken)
    with dg.build_run_status_sensor_context(
        sensor_name="training_failures",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=run.with_tags({**run.tags, "parley/training_job": lost["id"]}),
        resources={"postgres": resources(platform)["postgres"]},
    ) as context:
        training_failures(intent_training)(context.for_run_failure())
    assert job(platform["url"], lost["id"])["status"] == "failed" and job(platform["url"], lost["id"])["detail"]
