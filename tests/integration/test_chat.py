"""Conversations over HTTP: answers with sources, SSE framing, feedback, handoff, the outbox, isolation and limits."""

import json

import psycopg
import pytest

from tests.conftest import bearer, new_tenant

KB_TEXT = (
    "Refunds are paid back to the original card within 14 days of the return arriving at our warehouse. "
    "Store credit is issued at once if you prefer it."
)


@pytest.fixture
def shop(client):
    tenant_id, key = new_tenant(client, "shop")
    response = client.post("/v1/kb/documents", json={"title": "Refund policy", "text": KB_TEXT}, headers=bearer(key))
    assert response.status_code == 201
    return tenant_id, key, response.json()["id"]


def start(client, key, headers=None):
    response = client.post("/v1/conversations", json={}, headers={**bearer(key), **(headers or {})})
    assert response.status_code == 201, response.text
    return response.json()


def say(client, key, conversation_id, text, headers=None):
    return client.post(
        f"/v1/conversations/{conversation_id}/messages", json={"text": text}, headers={**bearer(key), **(headers or {})}
    )


def outbox(platform_db, tenant_id):
    with psycopg.connect(platform_db) as conn:
        return conn.execute(
            "SELECT type, payload, tenant_id FROM outbox WHERE tenant_id = %s ORDER BY id", (tenant_id,)
        ).fetchall()


def parse_sse(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_a_question_gets_a_grounded_answer_with_its_source(client, shop):
    _, key, document_id = shop
    conversation = start(client, key)
    response = say(client, key, conversation["id"], "How long does a refund take?")
    assert response.status_code == 200
    turn = response.json()
    assert "14 days" in turn["reply"]["text"]
    assert turn["reply"]["tier"] == "kb" and turn["reply"]["handoff_offered"] is False
    assert turn["reply"]["sources"][0]["document_id"] == document_id
    assert turn["reply"]["sources"][0]["title"] == "Refund policy"
    assert turn["latency_ms"] > 0
    transcript = client.get(f"/v1/conversations/{conversation['id']}", headers=bearer(key)).json()
    assert [(m["role"], m["id"]) for m in transcript["messages"]] == [
        ("user", turn["message_id"]),
        ("assistant", turn["reply"]["message_id"]),
    ]


def test_an_unknown_question_is_admitted_and_offers_a_person(client, shop, platform_db):
    tenant_id, key, _ = shop
    conversation = start(client, key)
    turn = say(client, key, conversation["id"], "Which planet has the most moons?").json()
    assert turn["reply"]["handoff_offered"] is True and turn["reply"]["sources"] == []
    assert "person" in turn["reply"]["text"]
    assert client.get(f"/v1/conversations/{conversation['id']}", headers=bearer(key)).json()["handoff_requested"]
    # Asked again, the conversation still wants one person: the handoff is reported to the lakehouse once.
    assert say(client, key, conversation["id"], "And the fewest moons?").json()["reply"]["handoff_offered"]
    handoffs = [payload for kind, payload, _ in outbox(platform_db, tenant_id) if kind == "handoff.requested"]
    assert [{k: v for k, v in h.items() if k != "at"} for h in handoffs] == [
        {"conversation_id": conversation["id"], "reason": "no confident answer"}
    ]
    assert all(h["at"] for h in handoffs), "the event carries when it happened, for the lake's ordering"


def test_streaming_answers_are_framed_as_server_sent_events(client, shop):
    _, key, _ = shop
    conversation = start(client, key)
    with client.stream(
        "POST",
        f"/v1/conversations/{conversation['id']}/messages",
        json={"text": "When do I get my refund?"},
        headers={**bearer(key), "Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    assert body.endswith("\n\n")
    events = parse_sse(body)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "message" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"} and len(kinds) > 3
    streamed = "".join(data["text"] for kind, data in events if kind == "token")
    done = events[-1][1]
    assert streamed == done["reply"]["text"] and "14 days" in streamed
    assert done["message_id"] == events[0][1]["message_id"]


def test_feedback_is_kept_and_can_change(client, shop):
    _, key, _ = shop
    conversation = start(client, key)
    turn = say(client, key, conversation["id"], "refund time?").json()
    reply_id = turn["reply"]["message_id"]
    first = client.post(f"/v1/messages/{reply_id}/feedback", json={"rating": "up"}, headers=bearer(key))
    assert first.status_code == 200 and first.json()["rating"] == "up"
    changed = client.post(
        f"/v1/messages/{reply_id}/feedback", json={"rating": "down", "comment": "too slow"}, headers=bearer(key)
    )
    assert changed.json()["rating"] == "down" and changed.json()["comment"] == "too slow"
    own_message = client.post(f"/v1/messages/{turn['message_id']}/feedback", json={"rating": "up"}, headers=bearer(key))
    assert own_message.status_code == 404
    bad = client.post(f"/v1/messages/{reply_id}/feedback", json={"rating": "meh"}, headers=bearer(key))
    assert bad.status_code == 422


def test_every_accepted_event_is_in_the_outbox_once(client, shop, platform_db):
    tenant_id, key, _ = shop
    conversation = start(client, key)
    turn = say(client, key, conversation["id"], "How are refunds paid?").json()
    client.post(f"/v1/messages/{turn['reply']['message_id']}/feedback", json={"rating": "up"}, headers=bearer(key))
    events = outbox(platform_db, tenant_id)
    assert [kind for kind, _, _ in events] == [
        "conversation.started",
        "message.created",
        "usage.recorded",  # the answer's usage, written in the same round trip as the answer
        "message.created",
        "feedback.given",
    ]
    messages = [payload for kind, payload, _ in events if kind == "message.created"]
    assert [(m["role"], m["message_id"]) for m in messages] == [
        ("user", turn["message_id"]),
        ("assistant", turn["reply"]["message_id"]),
    ]
    assert messages[1]["tier"] == "kb" and messages[1]["sources"]
    (usage,) = [payload for kind, payload, _ in events if kind == "usage.recorded"]
    assert usage["message_id"] == turn["reply"]["message_id"] and usage["tier"] == "kb" and usage["cost_usd"] == 0
    assert all(owner == tenant_id for _, _, owner in events)


def test_a_rejected_message_leaves_no_trace(client, shop, platform_db, settings):
    tenant_id, key, _ = shop
    conversation = start(client, key)
    before = outbox(platform_db, tenant_id)
    too_long = say(client, key, conversation["id"], "x" * (settings.max_message_chars + 1))
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "text"
    assert say(client, key, conversation["id"], "   ").status_code == 422
    assert say(client, key, "c_0000000000000000", "hello").status_code == 404
    assert outbox(platform_db, tenant_id) == before


def test_tenants_cannot_reach_each_others_conversations(client, shop, platform_db):
    _, key_a, _ = shop
    tenant_b, key_b = new_tenant(client, "other")
    conversation = start(client, key_a)
    turn = say(client, key_a, conversation["id"], "refund?").json()
    assert client.get(f"/v1/conversations/{conversation['id']}", headers=bearer(key_b)).status_code == 404
    assert say(client, key_b, conversation["id"], "let me in").status_code == 404
    reply = turn["reply"]["message_id"]
    assert (
        client.post(f"/v1/messages/{reply}/feedback", json={"rating": "down"}, headers=bearer(key_b)).status_code == 404
    )
    # Tenant B's knowledge base is empty, so B's own conversation cannot see A's refund policy either.
    b_turn = say(client, key_b, start(client, key_b)["id"], "How long does a refund take?").json()
    assert b_turn["reply"]["sources"] == [] and "14 days" not in b_turn["reply"]["text"]
    assert {owner for _, _, owner in outbox(platform_db, tenant_b)} == {tenant_b}
    assert not any(reply in json.dumps(payload) for _, payload, _ in outbox(platform_db, tenant_b))


def test_a_tenant_over_its_rate_limit_gets_429_and_others_do_not(client, admin):
    tenant_id, key = new_tenant(client, "limited")
    client.patch(f"/v1/tenants/{tenant_id}", json={"settings": {"rate_limit_per_minute": 3}}, headers=admin)
    statuses = [client.post("/v1/kb/search", json={"query": "x"}, headers=bearer(key)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.post("/v1/kb/search", json={"query": "x"}, headers=bearer(key))
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["retry-after"]) <= 20
    assert limited.json()["type"] == "urn:parley:problem:rate-limited"
    _, other_key = new_tenant(client, "unlimited")
    assert client.post("/v1/kb/search", json={"query": "x"}, headers=bearer(other_key)).status_code == 200


# --- the widget: public keys bound to origins ------------------------------------------------------------------------

SHOP = "http://shop.test:8080"


@pytest.fixture
def widget(client, shop):
    tenant_id, key, _ = shop
    created = client.post(
        f"/v1/tenants/{tenant_id}/widget-keys", json={"allowed_origins": [SHOP + "/"]}, headers=bearer(key)
    )
    assert created.status_code == 201, created.text
    assert created.json()["allowed_origins"] == [SHOP]
    return created.json()["key"]


def test_a_widget_chats_from_its_origin_with_cors_for_that_origin_only(client, widget):
    conversation = start(client, widget, {"Origin": SHOP})
    assert conversation["channel"] == "widget" and conversation["visitor_token"]
    visitor = {"Origin": SHOP, "X-Visitor-Token": conversation["visitor_token"]}
    answered = say(client, widget, conversation["id"], "refund time?", visitor)
    assert answered.status_code == 200 and "14 days" in answered.json()["reply"]["text"]
    assert answered.headers["access-control-allow-origin"] == SHOP
    assert (
        client.get(f"/v1/conversations/{conversation['id']}", headers={**bearer(widget), **visitor}).status_code == 200
    )


def test_a_widget_key_is_refused_elsewhere(client, widget, shop):
    tenant_id, _, document_id = shop
    for origin in ({}, {"Origin": "http://evil.test"}):
        refused = client.post("/v1/conversations", json={}, headers={**bearer(widget), **origin})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
    at_shop = {"Origin": SHOP}
    assert (
        client.post("/v1/kb/search", json={"query": "refund"}, headers={**bearer(widget), **at_shop}).status_code == 403
    )
    assert client.get(f"/v1/kb/documents/{document_id}", headers={**bearer(widget), **at_shop}).status_code == 403
    assert client.get(f"/v1/tenants/{tenant_id}", headers={**bearer(widget), **at_shop}).status_code == 403


def test_a_visitor_reaches_only_its_own_conversation(client, widget):
    mine = start(client, widget, {"Origin": SHOP})
    theirs = start(client, widget, {"Origin": SHOP})
    wrong = {"Origin": SHOP, "X-Visitor-Token": theirs["visitor_token"]}
    assert client.get(f"/v1/conversations/{mine['id']}", headers={**bearer(widget), **wrong}).status_code == 404
    assert say(client, widget, mine["id"], "hi", wrong).status_code == 404
    no_token = {"Origin": SHOP}
    assert client.get(f"/v1/conversations/{mine['id']}", headers={**bearer(widget), **no_token}).status_code == 404
    assert say(client, widget, mine["id"], "hi", no_token).status_code == 404
    # The refused messages left nothing behind in the visitor's conversation.
    own = {"Origin": SHOP, "X-Visitor-Token": mine["visitor_token"]}
    assert client.get(f"/v1/conversations/{mine['id']}", headers={**bearer(widget), **own}).json()["messages"] == []


def test_preflight_is_answered_only_for_origins_a_widget_allows(client, widget):
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = client.options("/v1/conversations", headers={"Origin": SHOP, **asked})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    refused = client.options("/v1/conversations", headers={"Origin": "http://evil.test", **asked})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


def test_widget_keys_are_managed_by_owners_and_revocable(client, shop, widget):
    tenant_id, key, _ = shop
    listed = client.get(f"/v1/tenants/{tenant_id}/widget-keys", headers=bearer(key)).json()
    assert [k["key"] for k in listed] == [widget]
    bad = client.post(
        f"/v1/tenants/{tenant_id}/widget-keys", json={"allowed_origins": ["not a url"]}, headers=bearer(key)
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "allowed_origins"
    assert (
        client.delete(f"/v1/tenants/{tenant_id}/widget-keys/{listed[0]['id']}", headers=bearer(key)).status_code == 204
    )
    assert client.post("/v1/conversations", json={}, headers={**bearer(widget), "Origin": SHOP}).status_code == 401
    _, other_key = new_tenant(client, "widget-other")
    assert client.get(f"/v1/tenants/{tenant_id}/widget-keys", headers=bearer(other_key)).status_code == 404
    trail = [e["action"] for e in client.get(f"/v1/tenants/{tenant_id}/audit", headers=bearer(key)).json()]
    assert trail[:2] == ["widget_key.revoke", "widget_key.create"]


def test_the_widget_script_and_demo_page_are_served(client):
    script = client.get("/widget.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("application/javascript")
    # The test platform has no demo tenant: the page explains how to get one instead of failing obscurely.
    demo = client.get("/demo")
    assert demo.status_code == 404 and "make run" in demo.text
