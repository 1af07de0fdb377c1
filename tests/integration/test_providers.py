"""The OpenAI and Anthropic providers against real HTTP servers on 127.0.0.1 that speak each vendor's protocol."""

import asyncio
import time

import pytest

from core.llm.anthropic import AnthropicProvider
from core.llm.base import ChatMessage, ChatParams, ProviderError
from core.llm.catalog import build_providers, load_catalog
from core.llm.openai import OpenAIProvider
from core.llm.resilience import with_retries
from tests.conftest import free_port
from tests.fakes.vendors import Answer, Fail, Garbage, Hang, serve_vendor

QUESTION = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "How long do refunds take?")]
PARAMS = ChatParams(model="gpt-test", timeout_s=5)


@pytest.fixture(params=["openai", "anthropic"])
def vendor(request):
    anthropic = request.param == "anthropic"
    with serve_vendor(anthropic=anthropic) as fake:
        kind = AnthropicProvider if anthropic else OpenAIProvider
        # A fresh provider per call: each call below runs in its own event loop, and a client belongs to one.
        fake.provider = lambda: kind(name=request.param, base_url=fake.base_url, api_key="sk-test-secret")
        yield fake


def run(coroutine):
    return asyncio.run(coroutine)


async def _chat(provider, params=PARAMS):
    try:
        return await provider.chat(QUESTION, params)
    finally:
        await provider.aclose()


async def _stream(provider, params=PARAMS):
    try:
        return [delta async for delta in provider.stream(QUESTION, params)]
    finally:
        await provider.aclose()


def test_a_completion_carries_text_usage_and_the_vendors_auth(vendor):
    completion = run(_chat(vendor.provider()))
    assert completion.text == Answer().text and completion.model == "gpt-test"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (12, 9)
    sent = vendor.requests[0]
    if "x-api-key" in sent["headers"]:
        assert sent["headers"]["x-api-key"] == "sk-test-secret" and sent["headers"]["anthropic-version"]
        assert sent["body"]["system"] == "Answer briefly." and [m["role"] for m in sent["body"]["messages"]] == ["user"]
    else:
        assert sent["headers"]["authorization"] == "Bearer sk-test-secret"
        assert [m["role"] for m in sent["body"]["messages"]] == ["system", "user"]


def test_a_stream_yields_the_text_then_the_usage(vendor):
    deltas = run(_stream(vendor.provider()))
    assert "".join(d.text for d in deltas) == Answer().text and len(deltas) > 3
    assert deltas[-1].usage is not None and (deltas[-1].usage.input_tokens, deltas[-1].usage.output_tokens) == (12, 9)
    assert deltas[-1].finish_reason in ("stop", "end_turn")
    if "authorization" in vendor.requests[0]["headers"]:
        assert vendor.requests[0]["body"]["stream_options"] == {"include_usage": True}


def test_429_is_retryable_and_says_when(vendor):
    vendor.then(Fail(429, "slow down", retry_after="1"))
    with pytest.raises(ProviderError) as failed:
        run(_chat(vendor.provider()))
    assert failed.value.retryable and failed.value.status == 429 and failed.value.retry_after_s == 1.0
    assert "slow down" in str(failed.value) and "sk-test-secret" not in str(failed.value)


async def _chat_with_retries(provider, attempts):
    try:
        return await with_retries(lambda: provider.chat(QUESTION, PARAMS), attempts=attempts)
    finally:
        await provider.aclose()


def test_a_retry_honours_retry_after_then_succeeds(vendor):
    vendor.then(Fail(429, retry_after="1"))
    started = time.monotonic()
    assert run(_chat_with_retries(vendor.provider(), attempts=2)).text == Answer().text
    assert 1.0 <= time.monotonic() - started < 4 and len(vendor.requests) == 2


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (400, False), (401, False)])
def test_status_codes_are_classified(vendor, status, retryable):
    vendor.then(Fail(status, "nope"))
    with pytest.raises(ProviderError) as failed:
        run(_chat(vendor.provider()))
    assert failed.value.retryable is retryable and failed.value.status == status


def test_a_refused_request_is_not_retried(vendor):
    vendor.then(Fail(400, "bad request"), Answer())
    with pytest.raises(ProviderError):
        run(_chat_with_retries(vendor.provider(), attempts=3))
    assert len(vendor.requests) == 1


def test_a_hanging_vendor_times_out_on_time(vendor):
    vendor.then(Hang(5), Hang(5))
    quick = ChatParams(model="gpt-test", timeout_s=0.3)
    for call in (_chat, _stream):
        started = time.monotonic()
        with pytest.raises(ProviderError) as failed:
            run(call(vendor.provider(), quick))
        assert failed.value.retryable and "timed out" in str(failed.value)
        assert time.monotonic() - started < 1.5


def test_malformed_answers_are_provider_errors(vendor):
    vendor.then(Garbage(), Garbage())
    for call in (_chat, _stream):
        with pytest.raises(ProviderError) as failed:
            run(call(vendor.provider()))
        assert "malformed" in str(failed.value)


@pytest.mark.parametrize("kind", [OpenAIProvider, AnthropicProvider])
def test_a_refused_connection_fails_fast_and_retryably(kind):
    provider = kind(name="down", base_url=f"http://127.0.0.1:{free_port()}", api_key=None)
    started = time.monotonic()
    with pytest.raises(ProviderError) as failed:
        run(_chat(provider))
    assert failed.value.retryable and "could not be reached" in str(failed.value)
    assert time.monotonic() - started < 1.0


def test_the_catalog_builds_clients_that_reach_their_vendors(tmp_path):
    with serve_vendor() as openai_like, serve_vendor(anthropic=True) as anthropic_like:
        path = tmp_path / "providers.yaml"
        path.write_text(
            f"""
providers:
  fast:
    protocol: openai
    base_url: {openai_like.base_url}
    api_key_env: FAST_KEY
    models: {{m1: {{input_per_mtok: 0.1, output_per_mtok: 0.4, context_tokens: 8192}}}}
  careful:
    protocol: anthropic
    base_url: {anthropic_like.base_url}
    api_key_env: CAREFUL_KEY
    models: {{m2: {{input_per_mtok: 1, output_per_mtok: 5, context_tokens: 200000}}}}
"""
        )
        environ = {"FAST_KEY": "sk-fast", "CAREFUL_KEY": "sk-careful"}
        providers = build_providers(load_catalog(path, environ=environ), environ=environ)
        assert run(_chat(providers["fast"])).text == run(_chat(providers["careful"])).text == Answer().text
    assert openai_like.requests[0]["headers"]["authorization"] == "Bearer sk-fast"
    assert anthropic_like.requests[0]["headers"]["x-api-key"] == "sk-careful"
