"""The dbt warehouse (dbt/, pipelines/defs/dbt/assets.py): `dbt build` materialized for real by Dagster over the
shared lakehouse, the marts checked against the lake, and a failing dbt test failing the run."""

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from core.lake import (
    MESSAGE_SENTIMENT,
    SILVER_CONVERSATIONS,
    SILVER_MESSAGES,
    SILVER_TENANTS,
    TABLES,
    Lake,
)
from pipelines import keys
from pipelines.defs.dbt.assets import DBT_PROJECT, GROUP, TRANSLATOR, DbtResource, warehouse
from pipelines.resources import LakeResource
from pipelines.transforms.silver import CONVERSATIONS_SCHEMA

MARTS = ["dim_tenants", "fct_conversations", "fct_messages", "tenant_kpis"]
STAGING = [
    "stg_conversation_topics",
    "stg_conversations",
    "stg_message_sentiment",
    "stg_messages",
    "stg_tenant_daily",
    "stg_tenants",
]


def wh(name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, name])


def build(lake_root: Path, database: Path, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [warehouse],
        resources={"dbt": DbtResource(duckdb_path=str(database)), "lake": LakeResource(root=str(lake_root))},
        **kwargs,
    )


@pytest.fixture(scope="module")
def built(lakehouse, tmp_path_factory):
    """One `dbt build` of every model and test over the shared (read-only) lake; DuckDB in a temp folder."""
    database = tmp_path_factory.mktemp("dbt") / "parley.duckdb"
    versions = lake_versions(lakehouse.lake)
    started = time.perf_counter()
    result = build(lakehouse.root, database)
    print(f"\ndbt build through dagster: {time.perf_counter() - started:.1f}s")
    assert lake_versions(lakehouse.lake) == versions, "dbt wrote to the lake"
    return result, database


def lake_versions(lake: Lake) -> dict[str, int]:
    return {table.name: lake.table(table).version() for table in TABLES}


@pytest.fixture(scope="module")
def warehouse_db(built):
    _, database = built
    with duckdb.connect(str(database), read_only=True) as conn:
        yield conn


def rows(conn, sql: str) -> list[dict]:
    cursor = conn.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def column(conn, sql: str, *params) -> set:
    return {row[0] for row in conn.execute(sql, list(params)).fetchall()}


def lake_frame(lake: Lake, table, columns=None) -> pl.DataFrame:
    return pl.from_arrow(lake.read(table, columns=columns))


def test_dbt_sources_are_the_lake_assets_upstream_of_the_models():
    specs = {spec.key: spec for spec in warehouse.specs}
    assert set(specs) == {wh(name) for name in MARTS + STAGING}
    deps = {name: {dep.asset_key for dep in specs[wh(name)].deps} for name in MARTS + STAGING}
    assert deps["stg_conversations"] == {keys.CONVERSATIONS}
    assert deps["stg_messages"] == {keys.MESSAGES}
    assert deps["stg_tenants"] == {keys.TENANTS}
    assert deps["stg_message_sentiment"] == {keys.SENTIMENT}
    assert deps["stg_conversation_topics"] == {keys.TOPICS}
    assert deps["stg_tenant_daily"] == {keys.TENANT_DAILY}
    assert deps["tenant_kpis"] == {wh("dim_tenants"), wh("fct_conversations"), wh("fct_messages")}
    lake_keys = {keys.key(table) for table in TABLES}
    upstream = {dep for model_deps in deps.values() for dep in model_deps if dep.path[0] != GROUP}
    assert upstream <= lake_keys
    # Every dbt test is an asset check, among them the compound key and the tenant relationship.
    checks = {(check.asset_key, check.name) for check in warehouse.check_specs}
    compound = "unique_combination_of_columns_fct_conversations_tenant_id__conversation_id"
    assert (wh("fct_conversations"), compound) in checks
    assert (wh("fct_messages"), "relationships_fct_messages_tenant_id__tenant_id__ref_dim_tenants_") in checks
    assert (wh("tenant_kpis"), "assert_tenant_kpis_match_gold") in checks


def test_one_graph_with_the_lake_assets():
    from pipelines.definitions import defs as lake_defs

    defs = dg.Definitions(
        assets=[*lake_defs.assets, warehouse], resources={**lake_defs.resources, "dbt": DbtResource()}
    )
    graph = defs.resolve_asset_graph()
    assert keys.CONVERSATIONS in graph.get(wh("stg_conversations")).parent_keys
    assert wh("stg_conversations") in graph.get(keys.CONVERSATIONS).child_keys
    # Nothing of the lake became an external stub: each source is a materializable Python asset.
    assert all(graph.get(key).is_materializable for key in graph.get(wh("stg_messages")).parent_keys)


def test_dbt_build_materializes_every_model_and_passes_every_test(built):
    result, database = built
    assert result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert materialized == {wh(name) for name in MARTS + STAGING}
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(warehouse.check_specs) >= 40
    assert [e.check_name for e in evaluations if not e.passed] == []
    assert database.exists()
    # dbt's artifacts stay beside the DuckDB file, none in the source tree: only the parse state is kept.
    assert [path.name for path in (database.parent / "target").iterdir()] == ["partial_parse.msgpack"]
    project_target = {path.name for path in DBT_PROJECT.project_dir.joinpath("target").iterdir()}
    assert project_target <= {"manifest.json", "partial_parse.msgpack"}


def test_dim_tenants_holds_both_tenants_with_their_names(lakehouse, warehouse_db):
    dim = {row["tenant_id"]: row["tenant_name"] for row in rows(warehouse_db, "select * from dim_tenants")}
    acme, zeta = lakehouse.tenants
    assert dim == {acme: "Acme Bank", zeta: "Zeta Bank"}
    lake_tenants = lake_frame(lakehouse.lake, SILVER_TENANTS)
    assert dim == dict(zip(lake_tenants["tenant_id"], lake_tenants["name"], strict=True))


def test_facts_hold_exactly_the_lake_rows_of_each_tenant(lakehouse, warehouse_db):
    lake = lakehouse.lake
    messages = lake_frame(lake, SILVER_MESSAGES, ["tenant_id", "message_id", "conversation_id"])
    conversations = lake_frame(lake, SILVER_CONVERSATIONS, ["tenant_id", "conversation_id"])
    assert warehouse_db.execute("select count(*) from fct_messages").fetchone()[0] == messages.height
    assert warehouse_db.execute("select count(*) from fct_conversations").fetchone()[0] == conversations.height
    for tenant in lakehouse.tenants:
        lake_messages = set(messages.filter(pl.col("tenant_id") == tenant)["message_id"])
        assert column(warehouse_db, "select message_id from fct_messages where tenant_id = ?", tenant) == lake_messages
        assert lake_messages, tenant
        lake_conversations = set(conversations.filter(pl.col("tenant_id") == tenant)["conversation_id"])
        fact_conversations = column(
            warehouse_db, "select conversation_id from fct_conversations where tenant_id = ?", tenant
        )
        assert fact_conversations == lake_conversations, tenant
    # A message's conversation (found by id alone) belongs to the message's tenant.
    mixed = warehouse_db.execute(
        """select count(*) from fct_messages m join fct_conversations c using (conversation_id)
           where m.tenant_id <> c.tenant_id or m.conversation_key <> c.conversation_key"""
    ).fetchone()[0]
    assert mixed == 0


def test_tenant_kpis_agree_with_the_lake_per_tenant(lakehouse, warehouse_db):
    lake = lakehouse.lake
    conversations = lake_frame(lake, SILVER_CONVERSATIONS)
    messages = lake_frame(lake, SILVER_MESSAGES)
    sentiment = lake_frame(lake, MESSAGE_SENTIMENT)
    kpis = {row["tenant_id"]: row for row in rows(warehouse_db, "select * from tenant_kpis")}
    assert set(kpis) == set(lakehouse.tenants)
    for tenant in lakehouse.tenants:
        kpi = kpis[tenant]
        own = conversations.filter(pl.col("tenant_id") == tenant)
        own_messages = messages.filter(pl.col("tenant_id") == tenant)
        own_sentiment = sentiment.filter(pl.col("tenant_id") == tenant)
        outcomes = Counter(own["outcome"].to_list())
        assert kpi["conversations"] == own.height > 0
        assert kpi["messages"] == own_messages.height
        assert kpi["user_messages"] == own_messages.filter(pl.col("role") == "user").height
        assert (kpi["resolved"], kpi["handoff"], kpi["abandoned"], kpi["open_conversations"]) == (
            outcomes["resolved"],
            outcomes["handoff"],
            outcomes["abandoned"],
            outcomes["open"],
        )
        closed = outcomes["resolved"] + outcomes["handoff"] + outcomes["abandoned"]
        assert kpi["deflection_rate"] == pytest.approx(outcomes["resolved"] / closed)
        up, down = int(own["feedback_up"].sum()), int(own["feedback_down"].sum())
        assert (kpi["feedback_up"], kpi["feedback_down"]) == (up, down)
        assert kpi["satisfaction"] == pytest.approx(up / (up + down))
        negative = own_sentiment.filter(pl.col("label") == "negative").height
        assert kpi["scored_messages"] == own_sentiment.height
        assert kpi["negative_sentiment_share"] == pytest.approx(negative / own_sentiment.height)
        assert kpi["cost_usd"] == pytest.approx(own["cost_usd"].sum())
        assert kpi["cost_per_conversation_usd"] == pytest.approx(own["cost_usd"].sum() / own.height)
        assert kpi["input_tokens"] == own["input_tokens"].sum()
        assert kpi["first_day"] == min(own["date"].min(), own_messages["date"].min())
        assert kpi["last_day"] == max(own["date"].max(), own_messages["date"].max())
        assert kpi["active_days"] == own["date"].n_unique()
    # The two tenants' figures are their own: different, and adding up to the lake's totals.
    acme, zeta = (kpis[tenant] for tenant in lakehouse.tenants)
    assert acme["messages"] != zeta["messages"] or acme["cost_usd"] != zeta["cost_usd"]
    assert acme["messages"] + zeta["messages"] == messages.height
    assert acme["conversations"] + zeta["conversations"] == conversations.height


def conversations_frame(ids: list[tuple[str, str]]) -> pl.DataFrame:
    """silver/conversations rows with the given (tenant_id, conversation_id), the other columns mostly null."""
    started = datetime(2026, 11, 1, 9, tzinfo=UTC)
    rows = [
        dict.fromkeys(CONVERSATIONS_SCHEMA.names())
        | {"tenant_id": tenant, "conversation_id": conversation, "channel": "widget", "outcome": "resolved"}
        | {"started_at": started, "date": started.date()}
        for tenant, conversation in ids
    ]
    return pl.DataFrame(rows, schema=CONVERSATIONS_SCHEMA)


def test_a_failing_dbt_test_fails_the_materialization(tmp_path):
    """A lake of our own whose silver/conversations repeats a conversation: the staging model builds, its key
    tests fail, and the run fails naming them. Only that model is selected, to keep it quick."""
    lake = Lake(tmp_path / "lake")
    # c_1 twice for t_a is the duplicate; c_1 of t_b is another tenant's conversation, not a duplicate.
    frame = conversations_frame([("t_a", "c_1"), ("t_a", "c_1"), ("t_b", "c_1")])
    lake.overwrite(SILVER_CONVERSATIONS, frame.to_arrow())

    result = build(
        tmp_path / "lake", tmp_path / "dbt" / "parley.duckdb", selection=[wh("stg_conversations")], raise_on_error=False
    )
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    duplicates = {
        "unique_stg_conversations_conversation_key",
        "unique_combination_of_columns_stg_conversations_tenant_id__conversation_id",
    }
    assert failed == duplicates
    # The model's other tests ran and passed; no test of a model outside the selection ran (cautious selection).
    passed = {e.check_name for e in result.get_asset_check_evaluations() if e.passed}
    assert "not_null_stg_conversations_tenant_id" in passed
    (failure,) = result.get_step_failure_events()
    message = failure.event_specific_data.error.message
    for test in duplicates:
        assert f"Failure in test {test}" in message
    assert "Runtime Error" not in message
    # The failed run keeps its artifacts (and dbt.log) for whoever looks into it.
    (kept,) = (tmp_path / "dbt" / "target").iterdir()
    assert (kept / "dbt.log").exists()


def test_the_manifest_is_prepared_and_current():
    from pipelines.defs.dbt.assets import manifest_is_current

    assert DBT_PROJECT.manifest_path.exists() and manifest_is_current(DBT_PROJECT)
    source = {"resource_type": "source", "source_name": "lake", "unique_id": "source.parley.lake.x"}
    assert TRANSLATOR.get_asset_key(source | {"meta": {"lake_table": "gold/intent_daily"}}) == keys.INTENT_DAILY
    with pytest.raises(ValueError, match="lake_table"):
        TRANSLATOR.get_asset_key(source | {"meta": {"lake_table": "silver/nope"}})
