"""Labelled intent examples and training jobs through the API, per tenant."""

from __future__ import annotations

from tests.conftest import bearer, new_tenant
from tests.integration.test_chat import outbox


def key_with_role(client, tenant_id, owner_key, role):
    response = client.post(
        f"/v1/tenants/{tenant_id}/keys", json={"role": role, "name": role}, headers=bearer(owner_key)
    )
    assert response.status_code == 201, response.text
    return response.json()["key"]


def examples(intent, n, prefix="how do I"):
    return [{"text": f"{prefix} {intent} number {i}", "intent": intent} for i in range(n)]


def test_examples_are_added_in_bulk_once_each_and_counted_per_intent(client, platform_db):
    tenant_id, key = new_tenant(client, "examples")
    body = {"examples": examples("refund", 6) + examples("card", 4) + examples("refund", 2)}
    added = client.post("/v1/intents/examples", json=body, headers=bearer(key))
    assert added.status_code == 201, added.text
    assert added.json() | {"why_not": None} == {
        "added": 10,
        "duplicates": 2,
        "intents": {"card": 4, "refund": 6},
        "total": 10,
        "trainable": False,
        "why_not": None,
    }
    assert "at least 2 intents" in added.json()["why_not"]
    again = client.post("/v1/intents/examples", json={"examples": examples("card", 5)}, headers=bearer(key))
    assert again.json()["added"] == 1 and again.json()["trainable"] is True
    events = outbox(platform_db, tenant_id)
    assert [(kind, payload["intent"]) for kind, payload, _ in events].count(("intent_example.added", "card")) == 5
    assert len(events) == 11, "one event per example added, none for a duplicate: the lake gets each once"
    assert client.get("/v1/intents/examples", headers=bearer(key)).json()["intents"] == {"card": 5, "refund": 6}


def test_training_is_queued_only_when_the_examples_allow_it_and_jobs_stay_with_their_tenant(client):
    _, my_key = new_tenant(client, "train-a")
    _, their_key = new_tenant(client, "train-b")
    refused = client.post("/v1/models/intent/train", headers=bearer(my_key))
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert "Not enough examples" in refused.json()["detail"]
    body = {"examples": examples("refund", 5) + examples("card", 5)}
    assert client.post("/v1/intents/examples", json=body, headers=bearer(my_key)).status_code == 201
    queued = client.post("/v1/models/intent/train", headers=bearer(my_key))
    assert queued.status_code == 202, queued.text
    job = queued.json()
    assert job["status"] == "queued" and job["kind"] == "intent" and job["run_id"] is None
    assert job["examples"] == 10, "what the lake must hold before the job starts"
    assert client.get(f"/v1/models/jobs/{job['id']}", headers=bearer(my_key)).json()["id"] == job["id"]
    assert [j["id"] for j in client.get("/v1/models/jobs", headers=bearer(my_key)).json()] == [job["id"]]
    assert client.get(f"/v1/models/jobs/{job['id']}", headers=bearer(their_key)).status_code == 404
    assert client.get("/v1/models/jobs", headers=bearer(their_key)).json() == []
    assert client.get("/v1/intents/examples", headers=bearer(their_key)).json()["total"] == 0


def test_roles_and_bad_input(client):
    tenant_id, owner = new_tenant(client, "models-roles")
    viewer = key_with_role(client, tenant_id, owner, "viewer")
    analyst = key_with_role(client, tenant_id, owner, "analyst")
    body = {"examples": examples("refund", 1)}
    assert client.post("/v1/intents/examples", json=body, headers=bearer(viewer)).status_code == 403
    assert client.post("/v1/intents/examples", json=body, headers=bearer(analyst)).status_code == 403
    assert client.get("/v1/intents/examples", headers=bearer(analyst)).status_code == 200
    assert client.post("/v1/models/intent/train", headers=bearer(analyst)).status_code == 403
    for bad in (
        {"examples": []},
        {"examples": [{"text": "", "intent": "x"}]},
        {"examples": [{"text": "hi"}]},
        {"examples": [{"text": "hi", "intent": "x" * 101}]},
        {"rows": []},
    ):
        response = client.post("/v1/intents/examples", json=bad, headers=bearer(owner))
        assert response.status_code == 422, bad
        assert response.json()["errors"], bad
    assert client.get("/v1/intents/examples", headers=bearer(owner)).json()["total"] == 0, "nothing was stored"


def test_the_models_list_shows_a_tenants_registered_versions_to_those_who_may_read_models_only(
    client, settings, tmp_path
):
    from core.registry import Registry
    from tests.models.test_registry import log

    tenant_id, owner = new_tenant(client, "listing-a")
    other_id, other_owner = new_tenant(client, "listing-b")
    analyst = key_with_role(client, tenant_id, owner, "analyst")
    agent = key_with_role(client, tenant_id, owner, "agent")
    registry = Registry(settings.mlflow_location)
    first = log(registry, tenant_id, 0.8, tmp_path)
    registry.promote_if_better(kind="intent", tenant_id=tenant_id, version=first.version, metric="accuracy")
    log(registry, tenant_id, 0.7, tmp_path)
    log(registry, other_id, 0.9, tmp_path)

    listed = client.get("/v1/models", headers=bearer(owner)).json()
    assert {m["id"] for m in listed["data"]} >= {"parley-auto"}, "the OpenAI-compatible list is still there"
    assert [(m["kind"], m["version"], m["champion"], m["metrics"]["accuracy"]) for m in listed["registered"]] == [
        ("intent", 1, True, 0.8),
        ("intent", 2, False, 0.7),
    ]
    assert listed["registered"][0]["uri"] == f"models:/intent__{tenant_id}/1"
    assert listed["registered"][0]["data_fingerprint"]
    by_analyst = client.get("/v1/models", headers=bearer(analyst)).json()
    assert by_analyst["data"] == [] and len(by_analyst["registered"]) == 2, "an analyst may not chat but may read"
    by_agent = client.get("/v1/models", headers=bearer(agent)).json()
    assert "registered" not in by_agent and by_agent["data"], "an agent chats but does not read models"
    theirs = client.get("/v1/models", headers=bearer(other_owner)).json()["registered"]
    assert [(m["version"], m["metrics"]["accuracy"]) for m in theirs] == [(1, 0.9)]
