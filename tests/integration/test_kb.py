"""The knowledge base over HTTP, run against both vector engines: the embedded one and qdrant-client (the server's API;
its local mode stands in for a Qdrant server)."""

import io
import secrets

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from core.embeddings import DIM
from core.vectors import QdrantServerStore
from serving.app import create_app
from tests.conftest import bearer, new_tenant

MANUAL = """# Blender X200 manual

## Warranty
The Blender X200 has a two year warranty. Keep your receipt. Part number XK-4471 covers the motor base.

## Cleaning
Rinse the jar with warm water after each use. Never put the motor base in the dishwasher.
"""


@pytest.fixture(scope="module", params=["embedded", "qdrant-client"])
def kb_client(request, settings, encoder, vector_store):
    if request.param == "embedded":
        yield request.getfixturevalue("client")
        return
    store = QdrantServerStore(QdrantClient(":memory:"), dim=DIM)
    with TestClient(create_app(settings, encoder=encoder, vectors=store)) as client:
        yield client
    store.close()


@pytest.fixture
def tenant(kb_client):
    return new_tenant(kb_client, "kb")


def upload_json(client, key, title=None, text=MANUAL, **extra):
    body = {"title": title or f"Manual {secrets.token_hex(3)}", "text": text, **extra}
    return client.post("/v1/kb/documents", json=body, headers=bearer(key))


def upload_file(client, key, name, data, content_type="application/octet-stream", **fields):
    return client.post(
        "/v1/kb/documents", files={"file": (name, io.BytesIO(data), content_type)}, data=fields, headers=bearer(key)
    )


def search(client, key, query, top_k=5):
    response = client.post("/v1/kb/search", json={"query": query, "top_k": top_k}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def documents(client, key):
    return client.get("/v1/kb/documents", headers=bearer(key)).json()


def test_upload_read_and_search(kb_client, tenant):
    _, key = tenant
    created = upload_json(kb_client, key, title="Blender X200 manual", source_url="https://acme.test/x200")
    assert created.status_code == 201
    body = created.json()
    assert body["chunks"] >= 2 and body["documents"][0]["created"] is True
    document = kb_client.get(f"/v1/kb/documents/{body['id']}", headers=bearer(key)).json()
    assert [c["heading"] for c in document["chunks"]][:2] == [
        "Blender X200 manual > Warranty",
        "Blender X200 manual > Cleaning",
    ]
    hits = search(kb_client, key, "how long is the warranty?")
    assert hits[0]["document_id"] == body["id"]
    assert "two year warranty" in hits[0]["text"]
    assert hits[0]["source_url"] == "https://acme.test/x200"


def test_an_exact_part_number_is_found_by_its_code(kb_client, tenant):
    _, key = tenant
    upload_json(kb_client, key, title="Blender X200 manual")
    filler = "Our store sells kitchen appliances of many kinds. " * 3
    for n in range(6):
        upload_json(kb_client, key, title=f"Kitchen note {n}", text=f"{filler} Note number {n} about blenders.")
    hits = search(kb_client, key, "XK-4471", top_k=3)
    assert "XK-4471" in hits[0]["text"]


def test_re_uploading_the_same_content_changes_nothing(kb_client, tenant):
    _, key = tenant
    first = upload_json(kb_client, key, title="Same").json()
    again = upload_json(kb_client, key, title="Same")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"] and again.json()["documents"][0]["created"] is False
    assert len(documents(kb_client, key)) == 1
    hits = search(kb_client, key, "warranty receipt", top_k=10)
    assert len({hit["chunk_id"] for hit in hits}) == len(hits) == first["chunks"]


def test_delete_removes_the_chunks_from_search(kb_client, tenant):
    _, key = tenant
    kept = upload_json(kb_client, key, title="Kept", text="Our returns window is thirty days from delivery.").json()
    doomed = upload_json(kb_client, key, title="Doomed").json()
    assert any(hit["document_id"] == doomed["id"] for hit in search(kb_client, key, "warranty"))
    assert kb_client.delete(f"/v1/kb/documents/{doomed['id']}", headers=bearer(key)).status_code == 204
    assert all(hit["document_id"] == kept["id"] for hit in search(kb_client, key, "warranty", top_k=10))
    assert kb_client.get(f"/v1/kb/documents/{doomed['id']}", headers=bearer(key)).status_code == 404
    assert kb_client.delete(f"/v1/kb/documents/{doomed['id']}", headers=bearer(key)).status_code == 404


def test_two_tenants_never_see_each_others_knowledge(kb_client):
    _, key_a = new_tenant(kb_client, "a")
    _, key_b = new_tenant(kb_client, "b")
    secret = f"The vault code is ZQ-{secrets.token_hex(3)}."
    doc_a = upload_json(kb_client, key_a, title="Vault", text=secret).json()
    upload_json(kb_client, key_b, title="Other", text="Tenant B sells garden tools and seeds.")
    for query in ("vault code", secret):
        assert all(hit["document_id"] != doc_a["id"] for hit in search(kb_client, key_b, query, top_k=50))
    assert kb_client.get(f"/v1/kb/documents/{doc_a['id']}", headers=bearer(key_b)).status_code == 404
    assert kb_client.delete(f"/v1/kb/documents/{doc_a['id']}", headers=bearer(key_b)).status_code == 404
    assert [d["id"] for d in documents(kb_client, key_b)] != [doc_a["id"]]
    # Tenant A still has it, searchable.
    assert search(kb_client, key_a, "vault code")[0]["document_id"] == doc_a["id"]
    # The same content in two tenants is two documents, not one.
    assert upload_json(kb_client, key_b, title="Vault", text=secret).json()["id"] != doc_a["id"]


def test_markdown_html_and_csv_files(kb_client, tenant):
    _, key = tenant
    markdown = upload_file(kb_client, key, "faq.md", MANUAL.encode(), "text/markdown")
    assert markdown.status_code == 201 and markdown.json()["documents"][0]["title"] == "Blender X200 manual"
    page = (
        b"<html><head><title>Shipping</title><script>var x = 'not text';</script></head>"
        b"<body><h1>Shipping</h1><p>We ship to Canada in 5 days.</p><p>Express costs &euro;9.</p></body></html>"
    )
    html = upload_file(kb_client, key, "shipping.html", page, "text/html")
    assert html.status_code == 201
    stored = kb_client.get(f"/v1/kb/documents/{html.json()['id']}", headers=bearer(key)).json()
    assert stored["title"] == "Shipping" and "not text" not in stored["text"] and "€9" in stored["text"]
    table = b"question,answer\nDo you ship abroad?,Yes to 40 countries.\nCan I pay by invoice?,Only for businesses.\n"
    csv = upload_file(kb_client, key, "faq.csv", table, "text/csv")
    assert csv.status_code == 201
    assert [d["title"] for d in csv.json()["documents"]] == ["Do you ship abroad?", "Can I pay by invoice?"]
    assert search(kb_client, key, "pay with an invoice")[0]["title"] == "Can I pay by invoice?"


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, written by hand (no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_upload(kb_client, tenant):
    _, key = tenant
    response = upload_file(
        kb_client, key, "policy.pdf", minimal_pdf("Refunds are paid within 14 days."), "application/pdf"
    )
    assert response.status_code == 201, response.text
    assert "Refunds are paid within 14 days" in search(kb_client, key, "when are refunds paid")[0]["text"]


@pytest.mark.parametrize(
    ("name", "data", "status", "kind"),
    [
        ("virus.exe", b"MZ\x90\x00", 415, "unsupported-document"),
        ("empty.txt", b"", 422, "empty-document"),
        ("blank.md", b"   \n\n  ", 422, "empty-document"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", 422, "unreadable-document"),
        ("latin1.txt", "café crème".encode("latin-1"), 422, "unreadable-document"),
        ("half.csv", b"question,answer\nOnly a question,\n", 422, "empty-document"),
    ],
)
def test_bad_uploads_get_a_clear_4xx_and_leave_nothing(kb_client, tenant, name, data, status, kind):
    _, key = tenant
    response = upload_file(kb_client, key, name, data)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:parley:problem:{kind}"
    assert documents(kb_client, key) == []


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(kb_client, tenant, settings):
    _, key = tenant
    response = upload_file(kb_client, key, "big.txt", b"word " * (settings.max_upload_bytes // 5 + 10), "text/plain")
    assert response.status_code == 413
    assert documents(kb_client, key) == []


def test_bad_json_bodies_and_media_types(kb_client, tenant):
    _, key = tenant
    missing = kb_client.post("/v1/kb/documents", json={"title": "No text"}, headers=bearer(key))
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "text"
    assert (
        kb_client.post(
            "/v1/kb/documents", content=b"{oops", headers={**bearer(key), "content-type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        kb_client.post(
            "/v1/kb/documents", content=b"hello", headers={**bearer(key), "content-type": "text/plain"}
        ).status_code
        == 415
    )
    bad_meta = upload_file(kb_client, key, "a.txt", b"Some text.", "text/plain", metadata="[1, 2]")
    assert bad_meta.status_code == 422
    assert documents(kb_client, key) == []


def test_roles_on_the_knowledge_base(kb_client, tenant):
    tenant_id, owner = tenant

    def key_for(role):
        return kb_client.post(f"/v1/tenants/{tenant_id}/keys", json={"role": role}, headers=bearer(owner)).json()["key"]

    agent, viewer = key_for("agent"), key_for("viewer")
    upload_json(kb_client, owner, title="Manual")
    assert upload_json(kb_client, agent, title="Agent upload").status_code == 403
    assert search(kb_client, agent, "warranty")
    assert kb_client.post("/v1/kb/search", json={"query": "warranty"}, headers=bearer(viewer)).status_code == 403


class FailingStore:
    """A vector store whose index refuses writes, to prove an upload is all or nothing."""

    def __init__(self, inner):
        self.inner = inner
        self.deleted = []

    def upsert(self, **kwargs):
        raise RuntimeError("index unavailable")

    def delete_document(self, *, tenant_id, document_id):
        self.deleted.append(document_id)
        self.inner.delete_document(tenant_id=tenant_id, document_id=document_id)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_failed_index_write_leaves_no_rows(settings, encoder):
    failing = FailingStore(QdrantServerStore(QdrantClient(":memory:"), dim=DIM))
    with TestClient(create_app(settings, encoder=encoder, vectors=failing)) as client:
        _, key = new_tenant(client, "failing")
        response = upload_json(client, key, title="Never stored")
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert documents(client, key) == []
        assert len(failing.deleted) == 1, "the vectors of the failed document were not cleaned up"
