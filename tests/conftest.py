"""Real stores in a temp folder: one embedded PostgreSQL server per session, a fresh database where a test needs one."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient

from core.db import EmbeddedPostgres, migrate
from core.embeddings import DIM, AsyncEncoder, OnnxEncoder
from core.settings import Settings, load_settings
from core.vectors import EdgeVectorStore
from serving.app import create_app

ADMIN_TOKEN = "test-admin-token-" + "x" * 24


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> Iterator[str]:
    """URI of the session's embedded PostgreSQL server (its maintenance database)."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata")
    uri = server.start()
    yield uri
    server.stop()


def database_url(server_uri: str, name: str) -> str:
    return server_uri.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture
def fresh_database(pg_server: str) -> str:
    """An empty database of its own, for tests that watch the schema being built."""
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(pg_server, name)


@pytest.fixture(scope="session")
def platform_db(pg_server: str) -> str:
    """The migrated database the API tests share; tests isolate themselves by creating their own tenants."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "platform"')
    url = database_url(pg_server, "platform")
    asyncio.run(migrate(url))
    return url


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """Built models, shared by every app and server the session starts (building the encoder takes ~11 s)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def settings(platform_db: str, models_dir: Path, tmp_path_factory) -> Settings:
    return load_settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("data"),
        models_dir=models_dir,
        postgres_url=platform_db,
        admin_token=ADMIN_TOKEN,
        max_request_bytes=64 * 1024,
        max_upload_bytes=256 * 1024,
        max_message_chars=500,
    )


@pytest.fixture(scope="session")
def encoder(models_dir: Path) -> AsyncEncoder:
    """The real all-MiniLM-L6-v2 encoder, built and loaded once for the whole session."""
    return AsyncEncoder.preloaded(OnnxEncoder.load(models_dir))


@pytest.fixture(scope="session")
def vector_store(tmp_path_factory) -> Iterator[EdgeVectorStore]:
    """The embedded Qdrant engine; one process may open a shard, so every app in the suite shares this one."""
    store = EdgeVectorStore.open(tmp_path_factory.mktemp("vectors") / "chunks", dim=DIM)
    yield store
    store.close()


@pytest.fixture(scope="session")
def client(settings: Settings, encoder, vector_store) -> Iterator[TestClient]:
    with TestClient(create_app(settings, encoder=encoder, vectors=vector_store)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def vendor():
    """An LLM vendor speaking the OpenAI protocol on 127.0.0.1 (tests/fakes/vendors.py), one per test module."""
    from tests.fakes.vendors import serve_vendor

    with serve_vendor() as fake:
        yield fake


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_tenant(client: TestClient, name_hint: str = "tenant") -> tuple[str, str]:
    """Create a tenant through the API; return its id and owner key."""
    response = client.post(
        "/v1/tenants", json={"name": f"{name_hint}-{secrets.token_hex(4)}"}, headers=bearer(ADMIN_TOKEN)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["api_key"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app, *, start_timeout_s: float = 30) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread; yields its base URL, stops it afterwards."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
