"""Two simulated LLM vendors for bench/routing_cost.py: OpenAI-protocol HTTP servers on 127.0.0.1, each in its own
process, that answer from what Parley sends them (core/llm/prompt.py): the numbered passages "[n] <title>\\n<text>"
in the system message and the customer's question in the last user message.

What they are is SIMULATED (no language model runs); how they pick an answer is a real, deterministic mechanism:
  premium  the "strong" model: embeds the question with Parley's encoder (all-MiniLM-L6-v2) and takes a cosine-weighted
           vote of its K nearest neighbours among ALL Banking77 train questions (knowledge of the whole domain). If the
           winning intent is the title of a passage it was shown, it answers citing that passage as [n]; if not, it
           declines (no citation): a model told to answer only from the passages cannot cite one it was not shown.
  budget   the "weak" model: no knowledge of its own; it reads the passages and picks the one sharing the most content
           words with the question (ties, and no overlap at all, go to the earlier passage, as Parley ranks them), and
           cites it. With no passage at all it declines.
Both answer with the same short template, so the two differ in what they pick and in price, not in length.
Usage each reports: prompt_tokens = ceil(characters of all messages / 4), completion_tokens = ceil(words of the
answer * 1.3), the usual rules of thumb for English text with a BPE tokenizer.

POST /v1/chat/completions (JSON only: Parley's non-streaming path; a `stream` request gets a 400),
GET /healthz (200 once the model's data is loaded), GET /stats (requests, tokens, cited, declined so far).
Run: `python -m bench._vendors premium PORT MODELS_DIR TRAIN_NPY LABELS_JSON` or `python -m bench._vendors budget
PORT`; from a benchmark: `with running("premium", ...) as vendor:`.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench._harness import free_port, spawn, stop, wait_for_200

NEIGHBOURS = 10  # the premium model's K
START_TIMEOUT_S = 60.0  # the premium vendor loads the encoder before it answers /healthz
DECLINE = (
    "I'm sorry, I couldn't find this in our help articles. "
    "Would you like me to connect you with a person from our team?"
)
_PASSAGE = re.compile(r"^\[(\d{1,2})\] (.*)\n(.*)$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a about am an and any are as at be been but by can could did do does for from get got had has have how i i'm if "
    "in into is it its just me my no not of on or our please so still than that the their them then there these they "
    "this to too up was we were what when where which who why will with would you your".split()
)
_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class Passage:
    number: int
    title: str
    text: str


def passages_of(system: str) -> list[Passage]:
    """The numbered passages of Parley's system message (core/llm/prompt.py: "[n] title\\ntext", one per paragraph)."""
    return [Passage(int(m[1]), m[2].strip(), m[3].strip()) for m in _PASSAGE.finditer(system)]


def _content_words(text: str) -> set[str]:
    words = set()
    for word in _WORD.findall(text.lower()):
        if word not in _STOPWORDS:
            words.add(word[:-1] if len(word) > 4 and word.endswith("s") else word)
    return words


def cited(passage: Passage) -> str:
    return (
        f'Thanks for getting in touch! Our help article "{passage.title}" explains what to do [{passage.number}]. '
        "If anything is still unclear, just ask."
    )


def pick_budget(question: str, passages: list[Passage]) -> Passage | None:
    asked = _content_words(question)
    if not passages:
        return None
    return max(passages, key=lambda p: (len(asked & _content_words(f"{p.title} {p.text}")), -p.number))


class Premium:
    def __init__(self, models_dir: str, train_npy: str, labels_json: str) -> None:
        from core.embeddings import OnnxEncoder

        self.encoder = OnnxEncoder.load(Path(models_dir))
        self.train = np.load(train_npy)
        self.labels = np.array(json.loads(Path(labels_json).read_text(encoding="utf-8")))  # readable intent per row
        self._intents, self._index = np.unique(self.labels, return_inverse=True)

    def intent(self, question: str) -> str:
        vector = self.encoder.encode([question])[0]
        similarity = self.train @ vector
        nearest = np.argpartition(-similarity, NEIGHBOURS)[:NEIGHBOURS]
        votes = np.bincount(self._index[nearest], weights=similarity[nearest], minlength=len(self._intents))
        return str(self._intents[int(np.argmax(votes))])

    def pick(self, question: str, passages: list[Passage]) -> Passage | None:
        wanted = self.intent(question)
        return next((p for p in passages if p.title == wanted), None)


def make_app(pick: Callable[[str, list[Passage]], Passage | None]):
    served = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cited": 0, "declined": 0}

    async def respond(send, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await respond(send, 200, b'{"status":"ok"}')
            return
        if scope["path"] == "/stats":
            await respond(send, 200, json.dumps(served).encode())
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] != "/v1/chat/completions":
            await respond(send, 404, b'{"error":{"message":"not found","type":"invalid_request_error"}}')
            return
        request = json.loads(body)
        if request.get("stream"):
            await respond(send, 400, b'{"error":{"message":"this simulation answers JSON only","type":"invalid"}}')
            return
        messages = request.get("messages") or []
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        chosen = pick(question, passages_of(system))
        text = cited(chosen) if chosen else DECLINE
        usage = {
            "prompt_tokens": math.ceil(sum(len(m.get("content") or "") for m in messages) / 4),
            "completion_tokens": math.ceil(len(text.split()) * 1.3),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        served["requests"] += 1
        served["prompt_tokens"] += usage["prompt_tokens"]
        served["completion_tokens"] += usage["completion_tokens"]
        served["cited" if chosen else "declined"] += 1
        completion = {
            "id": f"chatcmpl-sim-{served['requests']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(request.get("model") or "sim"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }
        await respond(send, 200, json.dumps(completion, separators=(",", ":")).encode())

    return app


@dataclass(frozen=True)
class Vendor:
    kind: str
    base: str  # http://127.0.0.1:PORT

    @property
    def base_url(self) -> str:
        return f"{self.base}/v1"

    def stats(self) -> dict[str, float]:
        return httpx.get(f"{self.base}/stats", timeout=5).json()


@contextmanager
def running(kind: str, *args: str) -> Iterator[Vendor]:
    """The vendor `kind` in its own process on a free port of 127.0.0.1, stopped on exit; waits (bounded) for it."""
    port = free_port()
    process = spawn([sys.executable, "-m", "bench._vendors", kind, str(port), *args], {})
    try:
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        deadline = started + START_TIMEOUT_S
        while True:  # wait_for_200 allows 30 s; loading the encoder on a busy machine may take longer
            try:
                wait_for_200(f"{base}/healthz", started=time.perf_counter(), process=process)
                break
            except TimeoutError:
                if time.perf_counter() > deadline:
                    raise
        yield Vendor(kind, base)
    finally:
        stop(process)


def _serve(kind: str, port: int, args: list[str]) -> None:
    import uvicorn

    pick = Premium(*args).pick if kind == "premium" else pick_budget
    uvicorn.run(make_app(pick), host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
