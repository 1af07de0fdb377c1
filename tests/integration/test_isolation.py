"""Tenant isolation: every route under /v1/tenants/{tenant_id} is walked with tenant A's keys against tenant B."""

import pytest

from core.schemas import Role
from tests.conftest import bearer, new_tenant

SAMPLE_BODIES = {
    "POST": {"role": "agent", "name": "intruder"},
    "PATCH": {"name": "taken over"},
    "PUT": {"name": "taken over"},
}


def tenant_routes(app):
    """Every operation the API publishes under a tenant, from its OpenAPI document (new routes join automatically)."""
    for path, operations in app.openapi()["paths"].items():
        if "{tenant_id}" in path:
            for method in sorted(operations):
                yield method.upper(), path


@pytest.fixture
def two_tenants(client):
    a_id, a_owner = new_tenant(client, "a")
    b_id, b_owner = new_tenant(client, "b")
    a_keys = {Role.OWNER: a_owner}
    for role in (Role.ADMIN, Role.AGENT, Role.ANALYST, Role.VIEWER):
        a_keys[role] = client.post(f"/v1/tenants/{a_id}/keys", json={"role": role}, headers=bearer(a_owner)).json()[
            "key"
        ]
    b_key_id = client.get(f"/v1/tenants/{b_id}/keys", headers=bearer(b_owner)).json()[0]["id"]
    return a_keys, b_id, b_owner, b_key_id


def test_routes_under_a_tenant_exist_to_walk(client):
    assert len(list(tenant_routes(client.app))) >= 5


@pytest.mark.parametrize("role", list(Role))
def test_tenant_a_keys_cannot_reach_tenant_b(client, two_tenants, role):
    a_keys, b_id, b_owner, b_key_id = two_tenants
    before = client.get(f"/v1/tenants/{b_id}", headers=bearer(b_owner)).json()
    keys_before = client.get(f"/v1/tenants/{b_id}/keys", headers=bearer(b_owner)).json()
    for method, path in tenant_routes(client.app):
        url = path.replace("{tenant_id}", b_id).replace("{key_id}", b_key_id)
        response = client.request(method, url, json=SAMPLE_BODIES.get(method), headers=bearer(a_keys[role]))
        assert response.status_code in (403, 404), (role, method, path, response.status_code)
        for secret_of_b in (before["name"], keys_before[0]["prefix"], keys_before[0]["created_at"][:19]):
            assert secret_of_b not in response.text, (method, path)
    # Tenant B is exactly as it was: name, status and every key (none revoked, none added).
    assert client.get(f"/v1/tenants/{b_id}", headers=bearer(b_owner)).json() == before
    assert client.get(f"/v1/tenants/{b_id}/keys", headers=bearer(b_owner)).json() == keys_before


def test_foreign_tenant_looks_exactly_like_a_missing_one(client, two_tenants):
    a_keys, b_id, _, _ = two_tenants
    foreign = client.get(f"/v1/tenants/{b_id}", headers=bearer(a_keys[Role.OWNER]))
    missing = client.get("/v1/tenants/t_0000000000000000", headers=bearer(a_keys[Role.OWNER]))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["type"] == missing.json()["type"]
    assert foreign.json()["title"] == missing.json()["title"]
