import secrets

import pytest

from tests.conftest import ADMIN_TOKEN, bearer, new_tenant


def test_operator_creates_a_tenant_with_a_working_owner_key(client, admin):
    response = client.post("/v1/tenants", json={"name": f"Acme {secrets.token_hex(3)}"}, headers=admin)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "active" and body["id"].startswith("t_")
    assert body["api_key"].startswith("prl_")
    mine = client.get(f"/v1/tenants/{body['id']}", headers=bearer(body["api_key"]))
    assert mine.status_code == 200
    assert mine.json()["name"] == body["name"]
    assert "api_key" not in mine.json()


def test_tenant_names_are_unique_ignoring_case(client, admin):
    name = f"Unique {secrets.token_hex(3)}"
    assert client.post("/v1/tenants", json={"name": name}, headers=admin).status_code == 201
    again = client.post("/v1/tenants", json={"name": name.upper()}, headers=admin)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


def test_only_the_operator_lists_and_creates_tenants(client, admin):
    tenant_id, owner_key = new_tenant(client)
    listed = client.get("/v1/tenants", params={"limit": 500}, headers=admin)
    assert tenant_id in {t["id"] for t in listed.json()}
    assert client.get("/v1/tenants", headers=bearer(owner_key)).status_code == 403
    assert client.post("/v1/tenants", json={"name": "sneaky"}, headers=bearer(owner_key)).status_code == 403


def test_keys_are_listed_without_secrets(client):
    tenant_id, owner_key = new_tenant(client)
    created = client.post(
        f"/v1/tenants/{tenant_id}/keys", json={"role": "agent", "name": "widget"}, headers=bearer(owner_key)
    )
    assert created.status_code == 201
    agent_key = created.json()["key"]
    listing = client.get(f"/v1/tenants/{tenant_id}/keys", headers=bearer(owner_key))
    assert listing.status_code == 200
    assert {k["role"] for k in listing.json()} == {"owner", "agent"}
    for secret in (owner_key, agent_key):
        assert secret not in listing.text
        assert secret.split("_", 2)[2] not in listing.text
    assert all(set(k) >= {"id", "prefix", "created_at", "last_used_at", "revoked_at"} for k in listing.json())


def test_a_revoked_key_fails_on_its_very_next_request(client):
    tenant_id, owner_key = new_tenant(client)
    created = client.post(f"/v1/tenants/{tenant_id}/keys", json={"role": "analyst"}, headers=bearer(owner_key)).json()
    assert client.get(f"/v1/tenants/{tenant_id}", headers=bearer(created["key"])).status_code == 200
    revoked = client.delete(f"/v1/tenants/{tenant_id}/keys/{created['id']}", headers=bearer(owner_key))
    assert revoked.status_code == 204
    assert client.get(f"/v1/tenants/{tenant_id}", headers=bearer(created["key"])).status_code == 401
    listing = client.get(f"/v1/tenants/{tenant_id}/keys", headers=bearer(owner_key)).json()
    assert next(k for k in listing if k["id"] == created["id"])["revoked_at"] is not None
    # The owner key is untouched.
    assert client.get(f"/v1/tenants/{tenant_id}", headers=bearer(owner_key)).status_code == 200


def test_a_suspended_tenant_is_locked_out_until_resumed(client, admin):
    tenant_id, owner_key = new_tenant(client)
    suspended = client.patch(f"/v1/tenants/{tenant_id}", json={"status": "suspended"}, headers=admin)
    assert suspended.json()["status"] == "suspended"
    locked = client.get(f"/v1/tenants/{tenant_id}", headers=bearer(owner_key))
    assert locked.status_code == 403
    assert locked.json()["type"] == "urn:parley:problem:tenant-suspended"
    assert client.get(f"/v1/tenants/{tenant_id}/keys", headers=bearer(owner_key)).status_code == 403
    assert (
        client.patch(f"/v1/tenants/{tenant_id}", json={"status": "active"}, headers=bearer(owner_key)).status_code
        == 403
    )
    assert client.patch(f"/v1/tenants/{tenant_id}", json={"status": "active"}, headers=admin).status_code == 200
    assert client.get(f"/v1/tenants/{tenant_id}", headers=bearer(owner_key)).status_code == 200


def test_an_owner_renames_but_cannot_change_status(client):
    tenant_id, owner_key = new_tenant(client)
    new_name = f"Renamed {secrets.token_hex(3)}"
    renamed = client.patch(f"/v1/tenants/{tenant_id}", json={"name": new_name}, headers=bearer(owner_key))
    assert renamed.status_code == 200 and renamed.json()["name"] == new_name
    refused = client.patch(f"/v1/tenants/{tenant_id}", json={"status": "suspended"}, headers=bearer(owner_key))
    assert refused.status_code == 403
    assert client.get(f"/v1/tenants/{tenant_id}", headers=bearer(owner_key)).json()["status"] == "active"


def _key(client, tenant_id, owner_key, role):
    return client.post(f"/v1/tenants/{tenant_id}/keys", json={"role": role}, headers=bearer(owner_key)).json()


@pytest.mark.parametrize("role", ["agent", "analyst", "viewer"])
def test_roles_without_key_permissions_cannot_see_or_mint_keys(client, role):
    tenant_id, owner_key = new_tenant(client)
    key = _key(client, tenant_id, owner_key, role)["key"]
    assert client.get(f"/v1/tenants/{tenant_id}", headers=bearer(key)).status_code == 200
    assert client.get(f"/v1/tenants/{tenant_id}/keys", headers=bearer(key)).status_code == 403
    assert client.post(f"/v1/tenants/{tenant_id}/keys", json={"role": "viewer"}, headers=bearer(key)).status_code == 403
    assert client.patch(f"/v1/tenants/{tenant_id}", json={"name": "x" + role}, headers=bearer(key)).status_code == 403
    assert client.get(f"/v1/tenants/{tenant_id}/audit", headers=bearer(key)).status_code == 403


def test_an_admin_cannot_mint_or_revoke_owner_keys(client):
    tenant_id, owner_key = new_tenant(client)
    admin_key = _key(client, tenant_id, owner_key, "admin")["key"]
    assert (
        client.post(f"/v1/tenants/{tenant_id}/keys", json={"role": "owner"}, headers=bearer(admin_key)).status_code
        == 403
    )
    assert (
        client.post(f"/v1/tenants/{tenant_id}/keys", json={"role": "agent"}, headers=bearer(admin_key)).status_code
        == 201
    )
    owner_key_id = next(
        k["id"]
        for k in client.get(f"/v1/tenants/{tenant_id}/keys", headers=bearer(admin_key)).json()
        if k["role"] == "owner"
    )
    assert client.delete(f"/v1/tenants/{tenant_id}/keys/{owner_key_id}", headers=bearer(admin_key)).status_code == 403
    assert client.get(f"/v1/tenants/{tenant_id}", headers=bearer(owner_key)).status_code == 200


def test_every_admin_action_leaves_an_audit_row(client, admin):
    tenant_id, owner_key = new_tenant(client)
    created = _key(client, tenant_id, owner_key, "viewer")
    client.delete(f"/v1/tenants/{tenant_id}/keys/{created['id']}", headers=bearer(owner_key))
    client.patch(
        f"/v1/tenants/{tenant_id}", json={"name": f"Audited {secrets.token_hex(3)}"}, headers=bearer(owner_key)
    )
    client.patch(f"/v1/tenants/{tenant_id}", json={"status": "suspended"}, headers=admin)
    client.patch(f"/v1/tenants/{tenant_id}", json={"status": "active"}, headers=admin)
    trail = client.get(f"/v1/tenants/{tenant_id}/audit", headers=bearer(owner_key)).json()
    actions = [(entry["action"], entry["actor"].split(":")[0]) for entry in reversed(trail)]
    assert actions == [
        ("tenant.create", "platform-admin"),
        ("key.create", "platform-admin"),  # the owner key that came with the tenant
        ("key.create", "key"),
        ("key.revoke", "key"),
        ("tenant.update", "key"),
        ("tenant.suspend", "platform-admin"),
        ("tenant.resume", "platform-admin"),
    ]
    assert all(entry["tenant_id"] == tenant_id and entry["request_id"] for entry in trail)
    revoke = next(entry for entry in trail if entry["action"] == "key.revoke")
    assert revoke["target"] == created["id"] and revoke["details"] == {"role": "viewer", "name": "default"}


def test_revoking_twice_is_harmless_and_audited_once(client):
    tenant_id, owner_key = new_tenant(client)
    created = _key(client, tenant_id, owner_key, "viewer")
    for _ in range(2):
        assert (
            client.delete(f"/v1/tenants/{tenant_id}/keys/{created['id']}", headers=bearer(owner_key)).status_code == 204
        )
    trail = client.get(f"/v1/tenants/{tenant_id}/audit", headers=bearer(owner_key)).json()
    assert [entry["action"] for entry in trail].count("key.revoke") == 1
    unknown = client.delete(f"/v1/tenants/{tenant_id}/keys/k_0000000000000000", headers=bearer(owner_key))
    assert unknown.status_code == 404


def test_last_used_is_recorded(client):
    tenant_id, owner_key = new_tenant(client)
    before = client.get(f"/v1/tenants/{tenant_id}/keys", headers=bearer(owner_key)).json()
    assert before[0]["last_used_at"] is not None
    assert ADMIN_TOKEN not in str(before)
