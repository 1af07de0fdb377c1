"""What a model is asked: the tenant's passages, numbered, then the conversation so far, then the question; and which
passages its answer cited.

The model is told to answer only from the passages and to cite them as [1], [2]: the citations it writes become the
reply's sources, so a customer sees where an answer came from whichever tier wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.llm.base import ChatMessage
from core.llm.kb import source_of
from core.schemas import Source
from core.vectors import VectorHit

MAX_PASSAGES = 4
MAX_HISTORY_MESSAGES = 8  # the last four exchanges: enough for follow-ups, cheap in tokens
# Passages below this cosine are off topic; the model does better with none than with noise.
MIN_PASSAGE_SCORE = 0.3

INSTRUCTIONS = (
    "You are a customer-support assistant. Answer the customer's last message using only the numbered passages from "
    "the company's help articles below, and cite the passages you used like [1]. Be brief and friendly. If the "
    "passages do not contain the answer, say so and offer to connect the customer with a person from the team."
)

_CITATION = re.compile(r"\[(\d{1,2})\]")


def grounding(hits: Sequence[VectorHit]) -> list[VectorHit]:
    """The passages worth showing a model: on topic, best first, a few."""
    return [hit for hit in hits if hit.dense_score >= MIN_PASSAGE_SCORE][:MAX_PASSAGES]


def build_messages(
    *, question: str, passages: Sequence[VectorHit], history: Sequence[ChatMessage] = ()
) -> list[ChatMessage]:
    numbered = "\n\n".join(
        f"[{n}] {hit.payload.get('title', '')}\n{hit.payload['text']}" for n, hit in enumerate(passages, 1)
    )
    system = f"{INSTRUCTIONS}\n\nPassages:\n{numbered or '(none found)'}"
    earlier = [m for m in history if m.role in ("user", "assistant")][-MAX_HISTORY_MESSAGES:]
    return [ChatMessage("system", system), *earlier, ChatMessage("user", question)]


def cited_sources(text: str, passages: Sequence[VectorHit]) -> list[Source]:
    """The passages the answer cites, once each, in order of first citation."""
    cited: list[Source] = []
    for match in _CITATION.finditer(text):
        n = int(match.group(1))
        if 1 <= n <= len(passages):
            hit = passages[n - 1]
            if all(source.chunk_id != hit.chunk_id for source in cited):
                cited.append(source_of(hit))
    return cited
