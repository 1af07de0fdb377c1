"""The Dagster project as Dagster itself loads it, and the outbox sensor against a real outbox."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg

from pipelines.definitions import defs, lakehouse
from pipelines.defs.ingest.sensors import outbox_sensor
from pipelines.resources import PostgresResource
from tests.lake.conftest import new_platform_database, write_traffic

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def test_the_workspace_validates_with_the_dagster_cli(repo_root, tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", str(repo_root / "workspace.yaml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_graph_runs_from_the_outbox_to_gold_with_a_check_on_each_layer():
    graph = defs.resolve_asset_graph()
    keys = {"/".join(key.path) for key in graph.get_all_asset_keys()}
    assert {"bronze/events", "silver/messages", "enriched/message_sentiment", "gold/tenant_daily"} <= keys
    upstream = {"/".join(k.path) for k in graph.get(dg.AssetKey(["gold", "tenant_daily"])).parent_keys}
    assert {"silver/conversations", "silver/messages", "enriched/message_sentiment"} <= upstream
    checked = {"/".join(check.asset_key.path) for check in graph.asset_check_keys}
    assert {"bronze/events", "silver/conversations", "silver/messages", "gold/tenant_daily"} <= checked
    assert {"silver/intent_examples", "models/intent"} <= checked
    training = {"/".join(k.path) for k in graph.get(dg.AssetKey(["models", "intent_champion"])).parent_keys}
    assert training == {"models/intent"}
    assert {"/".join(k.path) for k in graph.get(dg.AssetKey(["models", "intent"])).parent_keys} == {
        "silver/intent_examples"
    }
    assert {s.name for s in defs.schedules} == {
        "lakehouse_hourly",
        "warehouse_hourly",
        "lake_maintenance_nightly",
        "weekly_retraining",
    }
    assert {s.name for s in defs.sensors} == {"outbox_sensor", "training_jobs_sensor", "training_failures"}


def test_the_sensor_starts_a_run_only_when_the_outbox_has_events_and_none_is_running(pg_server):
    url = new_platform_database(pg_server, f"sensor_{uuid.uuid4().hex[:8]}")
    sensor = outbox_sensor(lakehouse)
    with dg.instance_for_test() as instance:

        def tick():
            resources = {"postgres": PostgresResource(url=url)}
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                return sensor(context)

        assert isinstance(tick(), dg.SkipReason), "an empty outbox starts nothing"
        asyncio.run(write_traffic(url, ["Sensor A"], conversations=2, seed=1))
        request = tick()
        assert isinstance(request, dg.RunRequest) and int(request.tags["parley/pending"]) > 0
        instance.add_run(
            dg.DagsterRun(job_name=lakehouse.name, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
        )
        skipped = tick()
        assert isinstance(skipped, dg.SkipReason) and "still going" in skipped.skip_message
