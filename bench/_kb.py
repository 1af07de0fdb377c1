"""A platform with the StackFAQ threads as one tenant's knowledge base, for the retrieval-quality benchmarks."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STACKFAQ = SHARED_DATA / "stackfaq" / "stackExchange-FAQ.json"


def stackfaq_queries() -> list[tuple[str, int]]:
    """Every paraphrase with the number of the thread it belongs to."""
    threads = json.loads(STACKFAQ.read_text(encoding="utf-8"))["root"]["qapair"]
    return [
        (paraphrase.strip(), number)
        for number, thread in enumerate(threads)
        for paraphrase in (thread["rephr"] if isinstance(thread["rephr"], list) else [thread["rephr"]])
        if paraphrase and paraphrase.strip() not in ("", "*")
    ]


@dataclass
class StackFaqPlatform:
    client: object  # fastapi TestClient
    auth: dict[str, str]
    thread_of: dict[str, int]  # document id -> thread number
    encoder: object

    def search(self, query: str, top_k: int) -> list[dict]:
        response = self.client.post("/v1/kb/search", json={"query": query, "top_k": top_k}, headers=self.auth)
        response.raise_for_status()
        return response.json()["hits"]


@contextmanager
def stackfaq_platform() -> Iterator[StackFaqPlatform]:
    """The app in-process (real embedded PostgreSQL and vector engine in a temp folder), StackFAQ uploaded over HTTP."""
    from fastapi.testclient import TestClient

    from bench._data import BENCH_ADMIN_TOKEN, MODELS
    from core.embeddings import AsyncEncoder, OnnxEncoder
    from core.kb.demo import stackfaq_documents
    from core.settings import load_settings
    from serving.app import create_app

    encoder = OnnxEncoder.load(MODELS)
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as data_dir:
        settings = load_settings(
            _env_file=None, data_dir=data_dir, admin_token=BENCH_ADMIN_TOKEN, rate_limit_per_minute=10**6
        )
        with TestClient(create_app(settings, encoder=AsyncEncoder.preloaded(encoder))) as client:
            admin = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
            key = client.post("/v1/tenants", json={"name": "StackFAQ"}, headers=admin).json()["api_key"]
            auth = {"Authorization": f"Bearer {key}"}
            thread_of = {}
            for number, document in enumerate(stackfaq_documents(STACKFAQ)):
                body = {"title": document.title, "text": document.text}
                thread_of[client.post("/v1/kb/documents", json=body, headers=auth).json()["id"]] = number
            yield StackFaqPlatform(client=client, auth=auth, thread_of=thread_of, encoder=encoder)
