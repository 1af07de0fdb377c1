"""Bad input gets a clear RFC 9457 problem document and changes nothing."""

import secrets

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.conftest import ADMIN_TOKEN, bearer, new_tenant

PROBLEM = "application/problem+json"


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status"} <= set(body)
    assert body["status"] == status
    assert response.headers["x-request-id"] == body["request_id"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def tenant_count(client, admin):
    return len(client.get("/v1/tenants", params={"limit": 500}, headers=admin).json())


def test_malformed_json_is_400_and_creates_nothing(client, admin):
    before = tenant_count(client, admin)
    response = client.post(
        "/v1/tenants", content=b'{"name": "half', headers={**admin, "content-type": "application/json"}
    )
    body = assert_problem(response, 400)
    assert body["type"] == "urn:parley:problem:invalid-json"
    assert tenant_count(client, admin) == before


def test_wrong_types_name_the_field_and_why(client, admin):
    response = client.post("/v1/tenants", json={"name": 42}, headers=admin)
    body = assert_problem(response, 422)
    assert body["type"] == "urn:parley:problem:validation-error"
    assert body["errors"] == [
        {"location": "body", "field": "name", "message": "Input should be a valid string", "type": "string_type"}
    ]
    assert "name" in body["detail"]


def test_unknown_fields_and_bad_enums_are_named(client):
    tenant_id, owner_key = new_tenant(client)
    response = client.post(
        f"/v1/tenants/{tenant_id}/keys", json={"role": "superuser", "nmae": "typo"}, headers=bearer(owner_key)
    )
    body = assert_problem(response, 422)
    assert {error["field"] for error in body["errors"]} == {"role", "nmae"}
    assert any("owner" in error["message"] for error in body["errors"] if error["field"] == "role")


def test_query_parameters_are_validated(client, admin):
    body = assert_problem(client.get("/v1/tenants", params={"limit": 0}, headers=admin), 422)
    assert body["errors"][0]["location"] == "query" and body["errors"][0]["field"] == "limit"


def test_blank_names_are_refused(client, admin):
    assert_problem(client.post("/v1/tenants", json={"name": "   "}, headers=admin), 422)


def test_an_oversized_body_is_413_before_it_is_read(client, admin, settings):
    before = tenant_count(client, admin)
    oversized = b'{"name": "' + b"x" * (settings.max_request_bytes + 1) + b'"}'
    response = client.post("/v1/tenants", content=oversized, headers={**admin, "content-type": "application/json"})
    body = assert_problem(response, 413)
    assert body["type"] == "urn:parley:problem:payload-too-large"
    assert str(settings.max_request_bytes) in body["detail"]
    assert tenant_count(client, admin) == before


def test_an_oversized_chunked_body_is_413_too(client, admin, settings):
    def chunks():
        yield b'{"name": "'
        for _ in range(settings.max_request_bytes // 1024 + 2):
            yield b"y" * 1024
        yield b'"}'

    response = client.post("/v1/tenants", content=chunks(), headers={**admin, "content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


def test_unknown_routes_and_methods_are_problems(client, admin):
    assert_problem(client.get("/v1/nothing-here", headers=admin), 404)
    assert_problem(client.put("/v1/tenants", json={}, headers=admin), 405)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer prl_000000000000_" + "0" * 40,
        f"Bearer {ADMIN_TOKEN}x",
    ],
)
def test_every_kind_of_bad_credential_gets_the_same_401(client, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    tenant_id, _ = new_tenant(client)
    response = client.get(f"/v1/tenants/{tenant_id}", headers=headers)
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="parley"'
    reference = client.get(f"/v1/tenants/{tenant_id}").json()
    assert {k: v for k, v in body.items() if k != "request_id"} == {
        k: v for k, v in reference.items() if k != "request_id"
    }


def test_a_wrong_secret_with_a_real_prefix_is_the_same_401(client):
    tenant_id, owner_key = new_tenant(client)
    forged = owner_key[:-4] + ("AAAA" if not owner_key.endswith("AAAA") else "BBBB")
    assert_problem(client.get(f"/v1/tenants/{tenant_id}", headers=bearer(forged)), 401)


def test_an_unexpected_failure_is_a_500_problem_without_internals(settings, encoder, vector_store):
    app = create_app(settings, encoder=encoder, vectors=vector_store)

    @app.get("/boom")
    async def boom():
        raise RuntimeError(f"secret connection string postgresql://user:{secrets.token_hex(4)}@db")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    body = assert_problem(response, 500)
    assert "postgresql" not in response.text and "RuntimeError" not in response.text
    assert body["request_id"]


def test_a_sane_request_id_is_kept_and_a_hostile_one_replaced(client):
    kept = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\r\nx" * 10})
    assert replaced.headers["x-request-id"] != "bad id" and len(replaced.headers["x-request-id"]) == 16


def test_no_secret_reaches_the_logs(client, caplog):
    caplog.set_level("DEBUG")
    tenant_id, owner_key = new_tenant(client)
    client.get(f"/v1/tenants/{tenant_id}", headers=bearer(owner_key), params={"token": "query-secret-abc"})
    client.get(f"/v1/tenants/{tenant_id}", headers=bearer(owner_key[:-1] + "Z"))
    client.post("/v1/tenants", json={"name": 1}, headers=bearer(ADMIN_TOKEN))
    # httpx's own records are the test client's, not the server's.
    logged = "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith("httpx"))
    assert f"/v1/tenants/{tenant_id}" in logged, "the access log should have recorded the requests"
    for secret in (owner_key, owner_key.split("_", 2)[2], ADMIN_TOKEN, "query-secret-abc"):
        assert secret not in logged
