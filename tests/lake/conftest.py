"""A lakehouse with data: two tenants' demo traffic written through the outbox of their own database, then the
Dagster lakehouse job materialized for real into a Delta lake in a temp folder."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from core import demo_traffic, tenancy
from core.db import migrate
from core.lake import Lake
from tests.conftest import database_url

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
# Fixed, so figures in the lake are the same on every run; an hour before "now" leaves no conversation open.
TRAFFIC_END = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Lakehouse:
    root: Path
    db_url: str
    tenants: tuple[str, str]  # ids of "Acme Bank" and "Zeta Bank"
    lake: Lake


def new_platform_database(pg_server: str, name: str) -> str:
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(pg_server, name)
    asyncio.run(migrate(url))
    return url


async def write_traffic(url: str, names: list[str], *, conversations: int, seed: int, end=TRAFFIC_END) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn, conn.transaction():
        ids = []
        for name in names:
            tenant = await tenancy.find_tenant_by_name(conn, name=name) or await tenancy.create_tenant(
                conn, name=name, actor="test"
            )
            ids.append(tenant.id)
        traffic = demo_traffic.generate(
            tenant_ids=ids,
            conversations_per_tenant=conversations,
            utterances=demo_traffic.banking77(DATA_DIR),
            seed=seed,
            end=end,
        )
        await demo_traffic.write(conn, traffic)
        return ids


def run_lakehouse(
    root: Path, url: str, *, raise_on_error: bool = True, providers_file: Path | None = None
) -> dg.ExecuteInProcessResult:
    from pipelines.definitions import LAKE_ASSETS
    from pipelines.defs.quality.checks import CHECKS
    from pipelines.resources import LakeResource, LlmResource, ModelsResource, PostgresResource

    return dg.materialize(
        [*LAKE_ASSETS, *CHECKS],
        resources={
            "lake": LakeResource(root=str(root)),
            # A store nobody wrote to: no tenant has its own model, and the developer's store is never read.
            "models": ModelsResource(mlflow_uri=f"sqlite:///{root / 'no-mlflow' / 'mlflow.db'}"),
            "postgres": PostgresResource(url=url),
            # No providers unless a test brings its own: the tests never read the developer's PARLEY_PROVIDERS_FILE.
            "llm": LlmResource(providers_file=str(providers_file or ""), enabled=providers_file is not None),
        },
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="session")
def lakehouse(pg_server, tmp_path_factory) -> Lakehouse:
    """Shared and read-only: tests that change the lake or the outbox build their own."""
    url = new_platform_database(pg_server, "lakehouse")
    ids = asyncio.run(write_traffic(url, ["Acme Bank", "Zeta Bank"], conversations=150, seed=7))
    root = tmp_path_factory.mktemp("lake")
    assert run_lakehouse(root, url).success
    return Lakehouse(root=root, db_url=url, tenants=(ids[0], ids[1]), lake=Lake(str(root)))
