"""The official `openai` client, pointed at a running Parley server, just works."""

import httpx
import openai
import pytest

from serving.app import create_app
from tests.conftest import bearer, new_tenant, serving

QUESTION = "How long until my refund arrives?"


@pytest.fixture(scope="module")
def live_server(settings, encoder, vector_store):
    """A real uvicorn server on 127.0.0.1, in a thread, sharing the session's stores."""
    with serving(create_app(settings, encoder=encoder, vectors=vector_store)) as base:
        yield base


@pytest.fixture(scope="module")
def tenant_key(live_server):
    with httpx.Client(base_url=live_server) as http:
        _, key = new_tenant(http, "openai")
        http.post(
            "/v1/kb/documents",
            json={"title": "Refunds", "text": "Refunds reach your card within 14 days of the return arriving."},
            headers=bearer(key),
        ).raise_for_status()
    return key


@pytest.fixture
def openai_client(live_server, tenant_key):
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key=tenant_key, max_retries=0, timeout=30)


def test_models_lists_the_parley_aliases(openai_client):
    assert {model.id for model in openai_client.models.list()} == {"parley-auto", "parley-kb"}


def test_a_completion_round_trip(openai_client):
    completion = openai_client.chat.completions.create(
        model="parley-auto",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
        temperature=0.2,
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "stop"
    assert "14 days" in completion.choices[0].message.content
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.model_extra["parley"]["sources"][0]["title"] == "Refunds"


def test_a_streamed_completion_matches_the_whole_one(openai_client):
    whole = openai_client.chat.completions.create(model="parley-kb", messages=[{"role": "user", "content": QUESTION}])
    chunks = list(
        openai_client.chat.completions.create(
            model="parley-kb", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert streamed == whole.choices[0].message.content


def test_errors_reach_the_client_as_its_own_exceptions(openai_client, live_server):
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.UnprocessableEntityError):
        openai_client.chat.completions.create(model="parley-auto", messages=[{"role": "user", "content": ""}])
    stranger = openai.OpenAI(base_url=f"{live_server}/v1", api_key="prl_000000000000_" + "0" * 40, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
