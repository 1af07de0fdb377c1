"""Routing policies over HTTP: defaults, validation against providers.yaml, roles, audit, and two-tenant isolation."""

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.conftest import bearer, new_tenant

PROVIDERS = """
providers:
  acme-llm:
    protocol: openai
    base_url: http://127.0.0.1:9/v1
    models:
      small: {input_per_mtok: 0.15, output_per_mtok: 0.6, context_tokens: 128000}
      large: {input_per_mtok: 2.5, output_per_mtok: 10, context_tokens: 128000}
"""

PAID = {
    "tiers": ["cache", "kb", "acme-llm/small", "acme-llm/large"],
    "strategy": "cost",
    "quality_bar": 0.8,
    "budget": {"monthly_usd": 100, "soft_limit_usd": 80, "hard_limit_usd": 120},
    "max_cost_per_conversation_usd": 0.05,
}


@pytest.fixture(scope="module")
def policy_client(settings, encoder, vector_store, tmp_path_factory):
    path = tmp_path_factory.mktemp("providers") / "providers.yaml"
    path.write_text(PROVIDERS)
    app = create_app(settings.model_copy(update={"providers_file": path}), encoder=encoder, vectors=vector_store)
    with TestClient(app) as client:
        yield client


def key_of_role(client, tenant_id, owner_key, role):
    response = client.post(
        f"/v1/tenants/{tenant_id}/keys", json={"role": role, "name": role}, headers=bearer(owner_key)
    )
    assert response.status_code == 201, response.text
    return response.json()["key"]


def test_a_tenant_starts_on_the_free_tiers(policy_client):
    tenant_id, key = new_tenant(policy_client, "policy")
    policy = policy_client.get(f"/v1/tenants/{tenant_id}/policy", headers=bearer(key)).json()
    assert policy["tiers"] == ["cache", "kb"] and policy["budget"] is None and policy["strategy"] == "cost"


def test_a_policy_is_replaced_read_back_and_audited(policy_client):
    tenant_id, key = new_tenant(policy_client, "policy")
    put = policy_client.put(f"/v1/tenants/{tenant_id}/policy", json=PAID, headers=bearer(key))
    assert put.status_code == 200, put.text
    read = policy_client.get(f"/v1/tenants/{tenant_id}/policy", headers=bearer(key)).json()
    assert read == put.json() and read["tiers"] == PAID["tiers"] and read["budget"]["soft_limit_usd"] == 80
    audit = policy_client.get(f"/v1/tenants/{tenant_id}/audit", headers=bearer(key)).json()
    assert audit[0]["action"] == "policy.update" and audit[0]["details"]["tiers"] == PAID["tiers"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tiers": ["kb", "acme-llm/huge"]}, "acme-llm/huge"),
        ({"tiers": ["kb", "openai/gpt-4o"]}, "openai/gpt-4o"),
        ({"allowed_models": ["other/model"]}, "other/model"),
        ({"allowed_models": ["gpt4"]}, "not provider/model"),
        ({"tiers": ["kb", "kb"]}, "once"),
        ({"tiers": ["gpt4"]}, "provider/model"),
        ({"tiers": []}, "tiers"),
        ({"budget": {"monthly_usd": 100, "soft_limit_usd": 150}}, "soft_limit_usd"),
        ({"quality_bar": 1.5}, "quality_bar"),
        ({"strategy": "cheapest"}, "strategy"),
        ({"temperature": 2}, "temperature"),
    ],
)
def test_a_bad_policy_is_refused_and_the_old_one_kept(policy_client, change, field):
    tenant_id, key = new_tenant(policy_client, "policy")
    assert policy_client.put(f"/v1/tenants/{tenant_id}/policy", json=PAID, headers=bearer(key)).status_code == 200
    refused = policy_client.put(f"/v1/tenants/{tenant_id}/policy", json={**PAID, **change}, headers=bearer(key))
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert field in refused.text
    assert policy_client.get(f"/v1/tenants/{tenant_id}/policy", headers=bearer(key)).json()["tiers"] == PAID["tiers"]


def test_analysts_read_the_policy_and_only_owners_and_admins_change_it(policy_client):
    tenant_id, owner = new_tenant(policy_client, "policy")
    for role, may_read, may_write in [("admin", True, True), ("analyst", True, False), ("agent", False, False)]:
        key = key_of_role(policy_client, tenant_id, owner, role)
        read = policy_client.get(f"/v1/tenants/{tenant_id}/policy", headers=bearer(key))
        write = policy_client.put(f"/v1/tenants/{tenant_id}/policy", json=PAID, headers=bearer(key))
        assert (read.status_code == 200, write.status_code == 200) == (may_read, may_write), role
        assert write.status_code in (200, 403)


def test_one_tenants_policy_never_touches_anothers(policy_client):
    tenant_a, key_a = new_tenant(policy_client, "policy-a")
    tenant_b, key_b = new_tenant(policy_client, "policy-b")
    assert policy_client.put(f"/v1/tenants/{tenant_a}/policy", json=PAID, headers=bearer(key_a)).status_code == 200
    assert policy_client.get(f"/v1/tenants/{tenant_b}/policy", headers=bearer(key_b)).json()["tiers"] == ["cache", "kb"]
    assert policy_client.get(f"/v1/tenants/{tenant_b}/policy", headers=bearer(key_a)).status_code == 404
    assert policy_client.put(f"/v1/tenants/{tenant_b}/policy", json=PAID, headers=bearer(key_a)).status_code == 404
    assert policy_client.get(f"/v1/tenants/{tenant_b}/policy", headers=bearer(key_b)).json()["tiers"] == ["cache", "kb"]
