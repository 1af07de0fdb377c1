"""The serving tier runs each tenant's champion intent model: real models trained on Banking77 and CLINC150 texts,
a real MLflow store, the real app. Labels land on the customer's message (and its outbox event, for the lake), the
champion changes without a restart, tenants never see each other's models, and an out-of-scope question never reaches
a language model."""

from __future__ import annotations

import csv
import json
import time
from functools import partial
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from core.embeddings import ensure_model
from core.registry import Registry
from models.intent.pyfunc import ARTIFACT, PIP_REQUIREMENTS, IntentPyfunc
from models.intent.train import train_intent
from models.training import register
from serving.app import create_app
from tests.conftest import bearer, new_tenant
from tests.fakes.vendors import Answer
from tests.integration.test_chat import say, start
from tests.integration.test_routing import PROVIDERS, WITH_LLM

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed", "pin_blocked")
CARD_LATE = "I ordered my new card two weeks ago and it still has not come"
OFF_TOPIC = "what is the best recipe for a chocolate cake"


def banking_rows(per_intent: int, rename: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with (DATA / "banking77" / "train.csv").open(newline="") as file:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(file) if r["category"] in INTENTS]
    kept, seen = [], {}
    for text, label in rows:
        if seen.get(label, 0) < per_intent:
            seen[label] = seen.get(label, 0) + 1
            kept.append((text, (rename or {}).get(label, label)))
    return kept


def clinc_oos_rows() -> list[tuple[str, str]]:
    clinc = json.loads((DATA / "clinc150" / "data_full_train_val.json").read_text())
    return [(text, "oos") for text, _ in clinc["oos_train"]]


@pytest.fixture(scope="module")
def app_client(settings, encoder, vector_store, tmp_path_factory, vendor):
    path = tmp_path_factory.mktemp("champions") / "providers.yaml"
    path.write_text(PROVIDERS.format(base_url=vendor.base_url))
    quick = settings.model_copy(update={"providers_file": path, "champion_refresh_s": 0.2})
    with TestClient(create_app(quick, encoder=encoder, vectors=vector_store)) as client:
        yield client


@pytest.fixture(scope="module")
def registry(settings) -> Registry:
    return Registry(settings.mlflow_location)


def train(registry, settings, tmp_path, tenant_id, rows, oos_label=None):
    trained = train_intent(
        rows,
        base_encoder_dir=ensure_model(settings.models_location),
        folder=tmp_path / f"{tenant_id}-{len(rows)}" / ARTIFACT,
        oos_label=oos_label,
        recipe="frozen",
    )
    return register(
        tenant_id=tenant_id,
        kind="intent",
        trained=trained,
        registry=registry,
        python_model=IntentPyfunc(),
        artifact=ARTIFACT,
        pip_requirements=PIP_REQUIREMENTS,
    )


def turn(client, key, text):
    """One chat turn, then wait for any champion lookup or load it set off in the background."""
    conversation = start(client, key)
    response = say(client, key, conversation["id"], text)
    assert response.status_code == 200, response.text
    client.portal.call(client.app.state.champions.settle)
    return response.json()["reply"]


def refreshed(client, tenant_id):
    """Let the refresh period pass and the tenant's champion lookup (and any load it needs) finish, as the first turn
    after the period would start it."""
    champions = client.app.state.champions
    time.sleep(0.25)
    client.portal.call(partial(champions.predict, tenant_id=tenant_id, text="warm up"))
    client.portal.call(champions.settle)


def stored_user_messages(platform_db, tenant_id):
    with psycopg.connect(platform_db) as conn:
        messages = conn.execute(
            "SELECT intent, intent_confidence FROM messages WHERE tenant_id = %s AND role = 'user' ORDER BY created_at",
            (tenant_id,),
        ).fetchall()
        events = conn.execute(
            """SELECT payload->>'intent' FROM outbox
                WHERE tenant_id = %s AND type = 'message.created' AND payload->>'role' = 'user' ORDER BY id""",
            (tenant_id,),
        ).fetchall()
    return messages, [intent for (intent,) in events]


def test_the_champion_labels_the_customers_messages_and_a_new_champion_takes_over_without_a_restart(
    app_client, registry, settings, platform_db, tmp_path
):
    tenant_id, key = new_tenant(app_client, "champion")
    champions = app_client.app.state.champions
    assert turn(app_client, key, CARD_LATE)["intent"] is None, "no model yet: no intent"

    first = train(registry, settings, tmp_path, tenant_id, banking_rows(12))
    assert first.champion
    loads = champions.loads
    refreshed(app_client, tenant_id)
    reply = turn(app_client, key, CARD_LATE)
    assert reply["intent"] == "card_arrival" and reply["out_of_scope"] is False
    assert champions.loaded_version(tenant_id) == first.version and champions.loads == loads + 1

    renamed = train(registry, settings, tmp_path, tenant_id, banking_rows(12, {"card_arrival": "card_delivery"}))
    assert not renamed.champion, "the same data scores the same: no promotion"
    refreshed(app_client, tenant_id)
    assert turn(app_client, key, CARD_LATE)["intent"] == "card_arrival"
    registry.set_champion(kind="intent", tenant_id=tenant_id, version=renamed.version)
    refreshed(app_client, tenant_id)
    assert turn(app_client, key, CARD_LATE)["intent"] == "card_delivery"
    assert turn(app_client, key, CARD_LATE)["intent"] == "card_delivery"
    assert champions.loaded_version(tenant_id) == renamed.version
    assert champions.loads == loads + 2, "one load per version, however many turns"

    messages, events = stored_user_messages(platform_db, tenant_id)
    assert [intent for intent, _ in messages][-2:] == ["card_delivery", "card_delivery"]
    assert all(0 < confidence <= 1 for intent, confidence in messages if intent)
    assert events == [intent for intent, _ in messages], "the outbox event (and so the lake) has the same intent"


def test_two_tenants_never_load_each_others_models(app_client, registry, settings, platform_db, tmp_path):
    mine, my_key = new_tenant(app_client, "champion-a")
    theirs, their_key = new_tenant(app_client, "champion-b")
    train(registry, settings, tmp_path, mine, banking_rows(12))
    refreshed(app_client, mine)
    refreshed(app_client, theirs)
    assert turn(app_client, my_key, CARD_LATE)["intent"] == "card_arrival"
    assert turn(app_client, their_key, CARD_LATE)["intent"] is None
    assert app_client.app.state.champions.loaded_version(theirs) is None

    train(registry, settings, tmp_path, theirs, banking_rows(12, {label: f"b_{label}" for label in INTENTS}))
    refreshed(app_client, theirs)
    refreshed(app_client, mine)
    assert turn(app_client, their_key, CARD_LATE)["intent"] == "b_card_arrival"
    assert turn(app_client, my_key, CARD_LATE)["intent"] == "card_arrival"
    mine_stored, _ = stored_user_messages(platform_db, mine)
    theirs_stored, _ = stored_user_messages(platform_db, theirs)
    assert {intent for intent, _ in mine_stored} == {"card_arrival"}
    assert {intent for intent, _ in theirs_stored} == {None, "b_card_arrival"}


def test_an_out_of_scope_question_never_reaches_a_language_model(app_client, registry, settings, vendor, tmp_path):
    tenant_id, key = new_tenant(app_client, "champion-oos")
    put = app_client.put(f"/v1/tenants/{tenant_id}/policy", json=WITH_LLM, headers=bearer(key))
    assert put.status_code == 200, put.text
    train(registry, settings, tmp_path, tenant_id, banking_rows(20) + clinc_oos_rows(), oos_label="oos")
    vendor.script.clear()
    vendor.requests.clear()
    vendor.then(Answer(text="Here is a cake recipe [1].", input_tokens=50, output_tokens=5))

    refreshed(app_client, tenant_id)
    reply = turn(app_client, key, OFF_TOPIC)
    assert reply["out_of_scope"] is True and reply["tier"] != "llm" and reply["handoff_offered"] is True
    assert vendor.requests == [], "no model was asked to make up an answer"
    in_scope = turn(app_client, key, CARD_LATE)
    assert in_scope["intent"] == "card_arrival" and in_scope["out_of_scope"] is False
    assert in_scope["tier"] == "llm" and len(vendor.requests) == 1, "an in-scope question still reaches the model"
