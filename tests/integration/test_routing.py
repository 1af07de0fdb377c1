"""Chat through the router: the tenant's policy picks the tier, a vendor stood in by a real HTTP server on 127.0.0.1
answers or fails, the reply says who answered, usage is metered, budgets steer, and the semantic cache serves repeats
only within one tenant, one knowledge-base version and one policy."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from core.db import Database
from core.llm.cache import SemanticCache, invalidate
from core.llm.intent_routes import IntentRoute, IntentRoutes, explores, replace_routes
from core.llm.routing import read_context
from serving.app import create_app
from tests.conftest import bearer, new_tenant
from tests.fakes.vendors import Answer, BreakMidStream, Fail, serve_vendor
from tests.integration.test_chat import parse_sse, say, start

KB_TEXT = (
    "Refunds are paid back to the original card within 14 days of the return arriving at our warehouse. "
    "Store credit is issued at once if you prefer it."
)
# Near the refund policy (a passage the model is shown) but not close enough for the kb to answer with confidence.
OFF_KB = "Can I return a gift without a receipt?"
LLM_ANSWER = Answer(text="Yes, as store credit [1].", input_tokens=210, output_tokens=9)
# acme/small: $0.15 / $0.60 per million tokens
LLM_COST = (210 * 0.15 + 9 * 0.60) / 1_000_000

PROVIDERS = """
providers:
  acme:
    protocol: openai
    base_url: {base_url}
    timeout_s: 2
    models:
      small: {{input_per_mtok: 0.15, output_per_mtok: 0.6, context_tokens: 128000, quality: 0.8}}
      large: {{input_per_mtok: 2.5, output_per_mtok: 10.0, context_tokens: 128000, quality: 0.9}}
"""
WITH_LLM = {"tiers": ["cache", "kb", "acme/small"]}


@pytest.fixture(scope="module")
def llm_client(settings, encoder, vector_store, tmp_path_factory, vendor):
    path = tmp_path_factory.mktemp("routing") / "providers.yaml"
    path.write_text(PROVIDERS.format(base_url=vendor.base_url))
    app = create_app(settings.model_copy(update={"providers_file": path}), encoder=encoder, vectors=vector_store)
    with TestClient(app) as client:
        yield client


@pytest.fixture(autouse=True)
def fresh_script(vendor):
    vendor.script.clear()
    vendor.requests.clear()


def tenant_with_kb(client, policy=None, name="routing"):
    tenant_id, key = new_tenant(client, name)
    uploaded = client.post("/v1/kb/documents", json={"title": "Refund policy", "text": KB_TEXT}, headers=bearer(key))
    assert uploaded.status_code == 201, uploaded.text
    if policy is not None:
        put = client.put(f"/v1/tenants/{tenant_id}/policy", json=policy, headers=bearer(key))
        assert put.status_code == 200, put.text
    return tenant_id, key, uploaded.json()["id"]


def ask(client, key, text):
    conversation = start(client, key)
    response = say(client, key, conversation["id"], text)
    assert response.status_code == 200, response.text
    return conversation["id"], response.json()["reply"]


def usage_rows(platform_db, tenant_id):
    with psycopg.connect(platform_db) as conn:
        return conn.execute(
            """SELECT tier, provider, model, input_tokens, output_tokens, cost_usd::float8, cache_hit, outcome,
                      conversation_id, message_id
                 FROM usage WHERE tenant_id = %s ORDER BY id""",
            (tenant_id,),
        ).fetchall()


def test_the_kb_answers_what_it_knows_and_the_model_is_not_called(llm_client, vendor):
    _, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    _, reply = ask(llm_client, key, "How long does a refund take?")
    assert reply["tier"] == "kb" and reply["model"] is None and "14 days" in reply["text"]
    assert vendor.requests == []


def test_a_question_the_kb_cannot_answer_goes_to_the_model_with_the_passages(llm_client, vendor, platform_db):
    tenant_id, key, document_id = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(LLM_ANSWER)
    conversation_id, reply = ask(llm_client, key, OFF_KB)
    assert reply["tier"] == "llm" and reply["model"] == "acme/small"
    assert reply["text"] == LLM_ANSWER.text and reply["handoff_offered"] is False
    assert [source["document_id"] for source in reply["sources"]] == [document_id], "the [1] citation is a source"
    sent = vendor.requests[0]["body"]
    assert sent["model"] == "small" and sent["messages"][0]["role"] == "system"
    assert "Refunds are paid back" in sent["messages"][0]["content"] and sent["messages"][-1]["content"] == OFF_KB
    (row,) = usage_rows(platform_db, tenant_id)[-1:]
    assert row[:5] == ("llm", "acme", "small", 210, 9) and row[5] == pytest.approx(LLM_COST)
    assert row[6:9] == (False, "ok", conversation_id) and row[9] == reply["message_id"]
    transcript = llm_client.get(f"/v1/conversations/{conversation_id}", headers=bearer(key)).json()
    assert transcript["messages"][-1]["model"] == "acme/small" and transcript["messages"][-1]["tier"] == "llm"


def test_a_follow_up_shows_the_model_the_conversation_so_far(llm_client, vendor):
    _, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(LLM_ANSWER, Answer(text="Yes, that works too."))
    conversation = start(llm_client, key)
    assert say(llm_client, key, conversation["id"], OFF_KB).status_code == 200
    assert say(llm_client, key, conversation["id"], "And without the box?").json()["reply"]["tier"] == "llm"
    roles = [(m["role"], m["content"]) for m in vendor.requests[1]["body"]["messages"][1:]]
    assert roles == [("user", OFF_KB), ("assistant", LLM_ANSWER.text), ("user", "And without the box?")]


def test_when_the_vendor_fails_the_kb_still_answers_and_the_fallback_is_metered(llm_client, vendor, platform_db):
    tenant_id, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(Fail(500), Fail(500))  # both attempts of the only model
    _, reply = ask(llm_client, key, OFF_KB)
    assert reply["tier"] == "kb" and reply["handoff_offered"] is True, "the kb's honest 'not found' is the last word"
    assert len(vendor.requests) == 2
    assert usage_rows(platform_db, tenant_id)[-1][0] == "kb" and usage_rows(platform_db, tenant_id)[-1][7] == "fallback"


def test_a_streamed_answer_comes_token_by_token_from_the_model(llm_client, vendor, platform_db):
    tenant_id, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(LLM_ANSWER)
    conversation = start(llm_client, key)
    response = say(llm_client, key, conversation["id"], OFF_KB, headers={"Accept": "text/event-stream"})
    events = parse_sse(response.text)
    tokens = [data["text"] for name, data in events if name == "token"]
    assert len(tokens) > 3 and "".join(tokens) == LLM_ANSWER.text
    done = events[-1][1]
    assert events[-1][0] == "done" and done["reply"]["tier"] == "llm" and done["reply"]["model"] == "acme/small"
    assert vendor.requests[0]["body"]["stream"] is True
    assert usage_rows(platform_db, tenant_id)[-1][3:5] == (210, 9), "streamed usage is metered too"


def test_the_hard_limit_of_one_tenant_leaves_the_other_on_the_model(llm_client, vendor, platform_db):
    budget = {"tiers": ["kb", "acme/small"], "budget": {"monthly_usd": 0.00001}}  # no cache: each ask reaches routing
    _, spender_key, _ = tenant_with_kb(llm_client, budget, name="spender")
    _, saver_key, _ = tenant_with_kb(llm_client, budget, name="saver")
    vendor.then(Answer(text="Yes [1].", input_tokens=100_000, output_tokens=10), LLM_ANSWER)
    assert ask(llm_client, spender_key, OFF_KB)[1]["tier"] == "llm"  # $0.015: past its hard limit now
    assert ask(llm_client, spender_key, OFF_KB)[1]["tier"] == "kb"
    assert ask(llm_client, saver_key, OFF_KB)[1]["tier"] == "llm"
    assert len(vendor.requests) == 2


def test_a_repeated_question_is_served_from_the_cache_of_its_own_tenant_only(llm_client, vendor, platform_db):
    tenant_a, key_a, _ = tenant_with_kb(llm_client, WITH_LLM, name="cache-a")
    tenant_b, key_b, _ = tenant_with_kb(llm_client, WITH_LLM, name="cache-b")
    vendor.then(LLM_ANSWER, Answer(text="Only with a receipt [1]."))
    assert ask(llm_client, key_a, OFF_KB)[1]["tier"] == "llm"
    _, again = ask(llm_client, key_a, "can i return a gift without the receipt")
    assert again["tier"] == "cache" and again["model"] == "acme/small" and again["text"] == LLM_ANSWER.text
    assert len(vendor.requests) == 1, "a cache hit calls no model"
    _, other = ask(llm_client, key_b, OFF_KB)
    assert other["tier"] == "llm" and other["text"] == "Only with a receipt [1].", "tenant B never sees A's answer"
    hits = [row[6] for row in usage_rows(platform_db, tenant_a)]
    assert hits[-2:] == [False, True] and not any(row[6] for row in usage_rows(platform_db, tenant_b))
    usage = llm_client.get("/v1/usage", params={"group_by": "tier"}, headers=bearer(key_a)).json()
    assert {row["key"]: row["cache_hits"] for row in usage["rows"]}["cache"] == 1
    assert usage["total_calls"] == 2 and usage["cache_hit_rate"] == 0.5


def test_a_follow_up_that_leans_on_earlier_turns_is_not_served_from_the_cache(llm_client, vendor):
    _, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(Answer(text="It costs nothing [1]."), Answer(text="Shipping is free [1]."))
    conversation = start(llm_client, key)
    assert say(llm_client, key, conversation["id"], "How much does it cost?").json()["reply"]["tier"] == "llm"
    other = start(llm_client, key)
    assert say(llm_client, key, other["id"], "Do you ship to Norway?").json()["reply"]["tier"] == "llm"
    follow_up = say(llm_client, key, other["id"], "How much does it cost?").json()["reply"]
    assert follow_up["tier"] == "llm" and follow_up["text"] != "It costs nothing [1]."


def test_a_knowledge_base_change_empties_the_cache(llm_client, vendor):
    _, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(LLM_ANSWER)
    ask(llm_client, key, OFF_KB)
    assert ask(llm_client, key, OFF_KB)[1]["tier"] == "cache"
    added = llm_client.post(
        "/v1/kb/documents", json={"title": "Gifts", "text": "Gift returns need the gift receipt."}, headers=bearer(key)
    )
    assert added.status_code == 201
    _, after = ask(llm_client, key, OFF_KB)
    assert after["tier"] == "kb" and "gift receipt" in after["text"], "the new article answers, not the old answer"


def test_a_thumbs_down_evicts_the_answer_from_the_cache(llm_client, vendor):
    _, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(LLM_ANSWER, Answer(text="With the gift receipt only [1]."))
    ask(llm_client, key, OFF_KB)
    _, served = ask(llm_client, key, OFF_KB)
    assert served["tier"] == "cache"
    rated = llm_client.post(
        f"/v1/messages/{served['message_id']}/feedback", json={"rating": "down"}, headers=bearer(key)
    )
    assert rated.status_code == 200
    _, after = ask(llm_client, key, OFF_KB)
    assert after["tier"] == "llm" and after["text"] == "With the gift receipt only [1]."


def test_a_changed_policy_does_not_reuse_answers_made_under_the_old_one(llm_client, vendor):
    tenant_id, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(LLM_ANSWER, Answer(text="Under the new policy [1]."))
    ask(llm_client, key, OFF_KB)
    changed = {**WITH_LLM, "quality_bar": 0.5}
    assert llm_client.put(f"/v1/tenants/{tenant_id}/policy", json=changed, headers=bearer(key)).status_code == 200
    assert ask(llm_client, key, OFF_KB)[1]["text"] == "Under the new policy [1]."


def test_the_openai_endpoint_meters_real_tokens_and_names_the_model(llm_client, vendor, platform_db):
    _, key, _ = tenant_with_kb(llm_client, {**WITH_LLM, "tiers": ["kb", "acme/small"]})
    vendor.then(LLM_ANSWER)
    body = {"model": "acme/small", "messages": [{"role": "user", "content": "How long does a refund take?"}]}
    completion = llm_client.post("/v1/chat/completions", json=body, headers=bearer(key)).json()
    assert completion["usage"] == {"prompt_tokens": 210, "completion_tokens": 9, "total_tokens": 219}
    assert completion["parley"]["tier"] == "llm" and completion["parley"]["model"] == "acme/small"
    assert completion["parley"]["cost_usd"] == pytest.approx(LLM_COST)
    kb_only = llm_client.post("/v1/chat/completions", json={**body, "model": "parley-kb"}, headers=bearer(key))
    assert kb_only.json()["parley"]["tier"] == "kb" and len(vendor.requests) == 1
    refused = llm_client.post("/v1/chat/completions", json={**body, "model": "acme/large"}, headers=bearer(key))
    assert refused.status_code == 404 and refused.json()["type"].endswith("model-not-found")
    models = llm_client.get("/v1/models", headers=bearer(key)).json()["data"]
    assert [model["id"] for model in models] == ["parley-auto", "parley-kb", "acme/small"]


def test_breaker_states_show_in_readyz_and_metrics(settings, encoder, vector_store, tmp_path):
    with serve_vendor() as dead:
        path = tmp_path / "providers.yaml"
        path.write_text(PROVIDERS.format(base_url=dead.base_url))
        app = create_app(settings.model_copy(update={"providers_file": path}), encoder=encoder, vectors=vector_store)
        with TestClient(app) as client:
            _, key, _ = tenant_with_kb(client, WITH_LLM)
            dead.then(*[Fail(503)] * 10)
            for _ in range(3):  # two attempts each: the fifth consecutive failure opens the breaker
                assert ask(client, key, f"{OFF_KB} ({_})")[1]["tier"] == "kb"
            ready = client.get("/readyz").json()
            assert ready["status"] == "ready" and ready["routes"] == {"acme/small": "open"}
            assert 'parley_route_breaker_state{route="acme/small"} 2' in client.get("/metrics").text
            calls = len(dead.requests)
            assert ask(client, key, OFF_KB)[1]["tier"] == "kb" and len(dead.requests) == calls, "open: not called"


def test_two_serving_processes_see_each_others_entries_and_removals(client, platform_db):
    """Each process searches its own mirror of the cache: additions reach it by id, removals by epoch."""
    tenant_id, _ = new_tenant(client, "mirrors")
    vector = np.zeros(384, dtype=np.float32)
    vector[0] = 1.0
    answer = {"question": OFF_KB, "vector": vector, "sources": [], "tier": "llm", "model": "acme/small"}

    async def scenario():
        db = await Database.open(platform_db)
        try:
            first, second = SemanticCache(db=db), SemanticCache(db=db)

            async def state():
                async with db.connection() as conn:
                    return (await read_context(conn, tenant_id=tenant_id, conversation_id=None)).cache

            before = await state()
            assert await second.lookup(tenant_id=tenant_id, state=before, policy="p", vector=vector) is None
            await first.store(tenant_id=tenant_id, state=before, policy="p", text="Kept [1].", **answer)
            seen = await second.lookup(tenant_id=tenant_id, state=await state(), policy="p", vector=vector)
            other_policy = await second.lookup(tenant_id=tenant_id, state=await state(), policy="q", vector=vector)
            async with db.connection() as conn:
                await invalidate(conn, tenant_id=tenant_id)
            stale = await state()
            after_kb_change = await second.lookup(tenant_id=tenant_id, state=stale, policy="p", vector=vector)
            # An answer made before the knowledge base changed is not stored after it.
            await first.store(tenant_id=tenant_id, state=before, policy="p", text="Old [1].", **answer)
            return seen, other_policy, after_kb_change, await state()
        finally:
            await db.close()

    seen, other_policy, after_kb_change, final = asyncio.run(scenario())
    assert seen is not None and seen.text == "Kept [1]." and seen.similarity == pytest.approx(1.0)
    assert other_policy is None and after_kb_change is None
    assert final.newest_id == 0 and final.kb_version == 1, "the late answer of the old knowledge base was refused"


def test_the_openai_endpoint_streams_the_models_tokens_with_real_usage_last(llm_client, vendor):
    _, key, _ = tenant_with_kb(llm_client, {"tiers": ["kb", "acme/small"]})
    vendor.then(LLM_ANSWER)
    body = {"model": "acme/small", "stream": True, "messages": [{"role": "user", "content": OFF_KB}]}
    response = llm_client.post("/v1/chat/completions", json=body, headers=bearer(key))
    lines = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text == LLM_ANSWER.text and len(chunks) > 4
    assert chunks[-1]["usage"]["prompt_tokens"] == 210 and chunks[-1]["parley"]["model"] == "acme/small"


def test_a_model_answer_citing_no_passage_offers_a_person_and_is_not_cached(llm_client, vendor):
    _, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    decline = Answer(text="I could not find that; shall I connect you with a person?")
    vendor.then(decline, decline)
    conversation_id, reply = ask(llm_client, key, OFF_KB)
    assert reply["tier"] == "llm" and reply["sources"] == [] and reply["handoff_offered"] is True
    conversation = llm_client.get(f"/v1/conversations/{conversation_id}", headers=bearer(key)).json()
    assert conversation["handoff_requested"] is True
    assert ask(llm_client, key, OFF_KB)[1]["tier"] == "llm" and len(vendor.requests) == 2, "a decline is not replayed"


def test_a_kb_answer_below_the_tenants_bar_goes_to_the_model_and_one_above_it_does_not(llm_client, vendor):
    twin = {"title": "Refund policy for orders", "text": KB_TEXT.replace("14 days", "10 days")}
    answered_by = {}
    for bar in (0.95, 0.05):
        _, key, _ = tenant_with_kb(llm_client, {**WITH_LLM, "tiers": ["kb", "acme/small"], "quality_bar": bar})
        assert llm_client.post("/v1/kb/documents", json=twin, headers=bearer(key)).status_code == 201
        vendor.then(LLM_ANSWER)
        answered_by[bar] = ask(llm_client, key, "How long does a refund take?")[1]["tier"]
    # Two near-identical articles: the kb cannot tell which is right, so a demanding tenant gets the model.
    assert answered_by == {0.95: "llm", 0.05: "kb"}


def test_a_stream_that_breaks_off_keeps_what_was_said_and_says_so(llm_client, vendor, platform_db):
    tenant_id, key, _ = tenant_with_kb(llm_client, WITH_LLM)
    vendor.then(BreakMidStream())
    conversation = start(llm_client, key)
    response = say(llm_client, key, conversation["id"], OFF_KB, headers={"Accept": "text/event-stream"})
    events = parse_sse(response.text)
    said = "".join(data["text"] for name, data in events if name == "token")
    assert said and [name for name, _ in events][-2:] == ["error", "done"]
    transcript = llm_client.get(f"/v1/conversations/{conversation['id']}", headers=bearer(key)).json()
    assert transcript["messages"][-1]["text"] == said, "the part the customer saw is on record"
    assert usage_rows(platform_db, tenant_id)[-1][7] == "error"


# Per-intent routes. Intents reach the chat service from the intent model (the custom-models issue); until then the
# tests hand the service an intent the way the chat turn will.
TWIN = {"title": "Refund policy for orders", "text": KB_TEXT.replace("14 days", "10 days")}
DEMANDING = {"tiers": ["cache", "kb", "acme/small", "acme/large"], "quality_bar": 0.95}
REFUND_TIME = "How long does a refund take?"


def set_routes(client, tenant_id, *routes):
    async def write():
        async with client.app.state.db.transaction() as conn:
            await replace_routes(conn, tenant_id=tenant_id, routes=routes)

    client.portal.call(write)


def turn_with_intent(client, tenant_id, key, question, intent):
    conversation = start(client, key)
    chat = client.app.state.chat

    async def run():
        accepted = await chat.accept(tenant_id=tenant_id, conversation_id=conversation["id"], text=question)
        return await chat.answer(
            tenant_id=tenant_id,
            conversation_id=conversation["id"],
            question=question,
            accepted=accepted,
            started=time.perf_counter(),
            intent=intent,
        )

    return client.portal.call(run)


def last_routing(platform_db, tenant_id):
    with psycopg.connect(platform_db) as conn:
        return conn.execute(
            "SELECT tier, model, intent, routed_by FROM usage WHERE tenant_id = %s ORDER BY id DESC LIMIT 1",
            (tenant_id,),
        ).fetchone()


def test_an_intent_route_to_the_kb_lets_it_answer_below_the_bar_for_that_tenant_and_intent_only(
    llm_client, vendor, platform_db
):
    routed = {}
    for name in ("with-route", "without-route"):
        tenant_id, key, _ = tenant_with_kb(llm_client, DEMANDING, name=name)
        assert llm_client.post("/v1/kb/documents", json=TWIN, headers=bearer(key)).status_code == 201
        routed[name] = (tenant_id, key)
    set_routes(llm_client, routed["with-route"][0], IntentRoute("refund_timing", "kb", samples=400, explore_share=0))
    vendor.then(*[LLM_ANSWER] * 2)

    turns = {
        "route": turn_with_intent(llm_client, *routed["with-route"], REFUND_TIME, "refund_timing"),
        "no intent": turn_with_intent(llm_client, *routed["with-route"], REFUND_TIME, None),
        "other intent": turn_with_intent(llm_client, *routed["with-route"], REFUND_TIME, "card_lost"),
        "other tenant": turn_with_intent(llm_client, *routed["without-route"], REFUND_TIME, "refund_timing"),
    }
    # The kb's answer under the route is cached for routed turns only; the model's answer for plain-policy turns.
    assert {name: t.answered.tier for name, t in turns.items()} == {
        "route": "kb",
        "no intent": "llm",
        "other intent": "cache",
        "other tenant": "llm",
    }
    assert turns["other intent"].answered.model == "acme/small"
    assert turns["route"].answered.routed_by == "intent" and turns["other tenant"].answered.routed_by == "policy"
    assert len(vendor.requests) == 2
    assert last_routing(platform_db, routed["without-route"][0]) == ("llm", "small", "refund_timing", "policy")


def test_an_intent_route_to_a_dearer_model_leads_the_chain_and_the_budget_still_rules(llm_client, vendor, platform_db):
    tenant_id, key, _ = tenant_with_kb(llm_client, {**DEMANDING, "tiers": ["cache", "acme/small", "acme/large"]})
    set_routes(llm_client, tenant_id, IntentRoute("complaint", "acme/large", samples=120, explore_share=0))
    vendor.then(LLM_ANSWER, LLM_ANSWER)
    assert turn_with_intent(llm_client, tenant_id, key, OFF_KB, "complaint").answered.model == "acme/large"
    assert turn_with_intent(llm_client, tenant_id, key, OFF_KB, "greeting").answered.model == "acme/small"
    assert [r["body"]["model"] for r in vendor.requests] == ["large", "small"]
    assert last_routing(platform_db, tenant_id) == ("llm", "small", "greeting", "policy")

    # Past the soft limit only the cheapest model remains, whatever the intent route says.
    budget = {"monthly_usd": 10, "soft_limit_usd": 0.000001}
    policy = {**DEMANDING, "tiers": ["cache", "acme/small", "acme/large"], "budget": budget}
    assert llm_client.put(f"/v1/tenants/{tenant_id}/policy", json=policy, headers=bearer(key)).status_code == 200
    vendor.then(LLM_ANSWER)
    assert turn_with_intent(llm_client, tenant_id, key, OFF_KB, "complaint").answered.model == "acme/small"


def test_an_intent_route_to_a_model_leaves_the_knowledge_base_in_front_of_it(llm_client, vendor, platform_db):
    tenant_id, key, _ = tenant_with_kb(llm_client, {"tiers": ["cache", "kb", "acme/small", "acme/large"]})
    set_routes(llm_client, tenant_id, IntentRoute("complaint", "acme/large", samples=120, explore_share=0))
    vendor.then(LLM_ANSWER, LLM_ANSWER)
    sure = turn_with_intent(llm_client, tenant_id, key, REFUND_TIME, "complaint").answered
    assert sure.tier == "kb" and sure.routed_by == "intent", "what the kb is sure of stays free"
    unsure = turn_with_intent(llm_client, tenant_id, key, OFF_KB, "complaint").answered
    assert unsure.model == "acme/large", "what it is not sure of goes to the route's model"
    plain = turn_with_intent(llm_client, tenant_id, key, OFF_KB, "greeting").answered
    assert plain.model == "acme/small" and plain.routed_by == "policy"
    assert [r["body"]["model"] for r in vendor.requests] == ["large", "small"]


def test_an_intent_route_outside_the_policy_is_ignored_and_exploration_keeps_the_policy(
    llm_client, vendor, platform_db
):
    tenant_id, key, _ = tenant_with_kb(llm_client, {**DEMANDING, "tiers": ["kb", "acme/small"]})
    set_routes(
        llm_client,
        tenant_id,
        IntentRoute("complaint", "acme/large", samples=50, explore_share=0),  # the policy does not list it
        IntentRoute("refund_timing", "kb", samples=50, explore_share=1.0),  # every conversation explores
    )
    vendor.then(LLM_ANSWER, LLM_ANSWER)
    outside = turn_with_intent(llm_client, tenant_id, key, OFF_KB, "complaint").answered
    assert outside.model == "acme/small" and outside.routed_by == "policy"
    assert any("not a tier of the policy" in reason for reason in outside.skipped)
    explored = turn_with_intent(llm_client, tenant_id, key, OFF_KB, "refund_timing").answered
    assert explored.routed_by == "explore" and explored.model == "acme/small"
    assert last_routing(platform_db, tenant_id) == ("llm", "small", "refund_timing", "explore")


def test_intent_routes_are_reread_after_their_ttl_and_per_tenant(llm_client):
    first, _ = new_tenant(llm_client, "ttl-a")
    second, _ = new_tenant(llm_client, "ttl-b")
    now = [0.0]
    routes = IntentRoutes(db=llm_client.app.state.db, ttl_s=30, clock=lambda: now[0])

    def route(tenant_id, intent="billing"):
        found = llm_client.portal.call(lambda: routes.route(tenant_id=tenant_id, intent=intent))
        return found.tier if found else None

    set_routes(llm_client, first, IntentRoute("billing", "kb", samples=10))
    assert (route(first), route(second)) == ("kb", None)
    set_routes(llm_client, first, IntentRoute("billing", "acme/small", samples=20))
    set_routes(llm_client, second, IntentRoute("billing", "kb", samples=20))
    now[0] = 29.0
    assert (route(first), route(second)) == ("kb", None), "within the TTL the process keeps what it read"
    now[0] = 30.0
    assert (route(first), route(second)) == ("acme/small", "kb")
    set_routes(llm_client, first)
    now[0] = 61.0
    assert route(first) is None, "an emptied set is an empty set, not the old one"


def test_exploration_is_decided_per_conversation_at_the_share_asked():
    conversations = [f"c_{i:05d}" for i in range(4000)]
    explored = [c for c in conversations if explores(conversation_id=c, share=0.1)]
    assert 0.08 < len(explored) / len(conversations) < 0.12
    assert explored == [c for c in conversations if explores(conversation_id=c, share=0.1)], "same answer every time"
    assert not any(explores(conversation_id=c, share=0.0) for c in conversations)


def test_a_tenant_reads_its_own_intent_routes_and_never_another_tenants(llm_client):
    mine, my_key = new_tenant(llm_client, "routes-mine")
    theirs, their_key = new_tenant(llm_client, "routes-theirs")
    set_routes(
        llm_client,
        mine,
        IntentRoute("billing", "kb", samples=80, quality=0.91),
        IntentRoute("x", "acme/small", samples=5),
    )
    set_routes(llm_client, theirs, IntentRoute("secret_intent", "kb", samples=9))
    listed = llm_client.get(f"/v1/tenants/{mine}/policy/intents", headers=bearer(my_key))
    assert listed.status_code == 200
    assert [(r["intent"], r["tier"], r["samples"], r["in_policy"]) for r in listed.json()] == [
        ("billing", "kb", 80, True),
        ("x", "acme/small", 5, False),
    ]
    assert llm_client.get(f"/v1/tenants/{theirs}/policy/intents", headers=bearer(my_key)).status_code == 404
    assert [
        r["intent"] for r in llm_client.get(f"/v1/tenants/{theirs}/policy/intents", headers=bearer(their_key)).json()
    ] == ["secret_intent"]
