import socket

from fastapi.testclient import TestClient

from serving.app import create_app


def test_healthz_answers_without_credentials(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_each_configured_store(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"postgres", "lake", "vectors", "encoder"}
    assert all(check["ok"] and check["latency_ms"] >= 0 for check in body["checks"].values())
    assert body["metrics_store"] == "postgresql", "the embedded server has no TimescaleDB, and says so"


def closed_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_readyz_says_which_store_failed(settings, encoder):
    broken = settings.model_copy(
        update={
            "qdrant_url": f"http://127.0.0.1:{closed_local_port()}",
            "mlflow_uri": f"http://127.0.0.1:{closed_local_port()}",
        }
    )
    with TestClient(create_app(broken, encoder=encoder)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["failed"] == ["mlflow", "vectors"]
    assert body["checks"]["postgres"]["ok"] is True
    assert body["checks"]["vectors"]["ok"] is False and body["checks"]["vectors"]["error"]
    assert "vectors" in body["detail"]


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/tenants/{tenant_id}/keys/{key_id}" in spec["paths"]
