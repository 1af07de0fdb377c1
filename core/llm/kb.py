"""The knowledge-base answerer: the embedded tier that needs no LLM.

It answers by quoting the knowledge base: from the best passages it picks the sentences that share the most (and the
rarest) words with the question, keeps them in the order the author wrote them, and cites their sources. When even the
best passage is not close enough to the question (dense cosine under `min_score`, calibrated by
bench/answer_threshold.py), it says so plainly and offers a human instead of guessing.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

from core.kb.chunking import sentences
from core.llm.base import ChatMessage, ChatParams, Completion, Delta, Usage
from core.schemas import Source
from core.vectors import VectorHit

# Calibrated by bench/answer_threshold.py: StackFAQ paraphrases (in scope) against CLINC150 queries (out of scope),
# chosen on one half and checked on the other: balanced accuracy 0.991 (answers 98.7%, declines 99.4%).
DEFAULT_MIN_SCORE = 0.47
TIER = "kb"
RETRIEVE = 5  # passages searched per question
MAX_SENTENCES = 3
MAX_PASSAGES = 3
# Passages much weaker than the best one add noise, not support.
PASSAGE_MARGIN = 0.08

NOT_FOUND = (
    "I couldn't find an answer to that in our help articles, and I'd rather not guess. "
    "Would you like me to connect you with a person from our team?"
)

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_STOPWORDS = frozenset(
    "a an and are as at be but by can could do does for from had has have how i if in into is it its me my no not of "
    "on or our so than that the their them then there these they this to was we were what when where which who why "
    "will with would you your".split()
)


# P(the answer's first source is the right article) = sigmoid(intercept + per_score * best cosine + per_margin * how far
# the best passage leads the best passage of another document), fitted by bench/kb_confidence.py on Banking77 train
# questions against a knowledge base of one article per intent (77 close topics: the hard case).
QUALITY_INTERCEPT, QUALITY_PER_SCORE, QUALITY_PER_MARGIN = -3.00, 3.60, 16.26


@dataclass(frozen=True)
class Answer:
    text: str
    sources: list[Source]
    confident: bool
    quality: float = 0.0  # estimated probability that the answer is right
    tier: str = TIER


def quality_features(hits: list[VectorHit]) -> tuple[float, float]:
    """(the best cosine, how far it leads the best passage of another document)."""
    best = max(hits, key=lambda hit: hit.dense_score)
    rivals = [hit.dense_score for hit in hits if hit.payload["document_id"] != best.payload["document_id"]]
    if rivals:
        rival = max(rivals)
    elif len(hits) >= RETRIEVE:  # other documents may exist, but each scores below the weakest hit
        rival = min(hit.dense_score for hit in hits)
    else:  # search ran out of passages: the tenant has no other document to confuse this one with
        rival = 0.0
    return best.dense_score, best.dense_score - rival


def answer_quality(hits: list[VectorHit]) -> float:
    score, margin = quality_features(hits)
    z = QUALITY_INTERCEPT + QUALITY_PER_SCORE * score + QUALITY_PER_MARGIN * margin
    return round(1 / (1 + math.exp(-z)), 4)


def _terms(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


def _stem(word: str) -> str:
    # A light suffix strip is enough to match "refunds" with "refund" and "cancelled" with "cancel".
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


class KnowledgeBaseAnswerer:
    def __init__(self, *, min_score: float | None = None) -> None:
        self.min_score = DEFAULT_MIN_SCORE if min_score is None else min_score

    def answer(self, *, question: str, hits: list[VectorHit]) -> Answer:
        if not hits or max(hit.dense_score for hit in hits) < self.min_score:
            return Answer(text=NOT_FOUND, sources=[], confident=False)
        best = max(hit.dense_score for hit in hits)
        passages = [hit for hit in hits if hit.dense_score >= best - PASSAGE_MARGIN][:MAX_PASSAGES]
        chosen = self._choose_sentences(question, passages)
        cited: dict[str, VectorHit] = {}  # one citation per document, in order of first use
        parts: list[str] = []
        for hit, sentence in chosen:
            document_id = hit.payload["document_id"]
            cited.setdefault(document_id, hit)
            parts.append(f"{sentence} [{list(cited).index(document_id) + 1}]")
        return Answer(
            text=" ".join(parts),
            sources=[source_of(hit) for hit in cited.values()],
            confident=True,
            quality=answer_quality(hits),
        )

    def _choose_sentences(self, question: str, passages: list[VectorHit]) -> list[tuple[VectorHit, str]]:
        # Neighbouring chunks share a sentence (chunking overlaps them), so each sentence is a candidate once.
        seen: set[str] = set()
        candidates = [
            (rank, position, hit, sentence)
            for rank, hit in enumerate(passages)
            for position, sentence in enumerate(sentences(hit.payload["text"]))
            if not (sentence in seen or seen.add(sentence))
        ]
        asked = {_stem(term) for term in _terms(question)}
        # Rarer words among the candidates say more about the question than common ones (an IDF over the passages).
        frequency: dict[str, int] = {}
        for *_, sentence in candidates:
            for term in {_stem(t) for t in _terms(sentence)}:
                frequency[term] = frequency.get(term, 0) + 1

        def score(candidate) -> float:
            rank, position, _, sentence = candidate
            terms = {_stem(t) for t in _terms(sentence)}
            overlap = sum(math.log(1 + len(candidates) / frequency[t]) for t in terms & asked)
            # Earlier passages and a passage's opening sentences usually carry its point.
            return overlap + 0.6 / (1 + rank) + 0.4 / (1 + position)

        picked = sorted(candidates, key=score, reverse=True)[:MAX_SENTENCES]
        picked.sort(key=lambda c: (c[0], c[1]))  # read in the author's order
        return [(hit, sentence) for _, _, hit, sentence in picked]


def source_of(hit: VectorHit) -> Source:
    return Source(
        document_id=hit.payload["document_id"],
        chunk_id=hit.chunk_id,
        title=hit.payload.get("title", ""),
        source_url=hit.payload.get("source_url"),
        score=round(hit.dense_score, 4),
    )


class KnowledgeBaseProvider:
    """The answerer behind the provider interface, so the free tier is called like any model: it answers the last user
    message from the passages retrieval found (`params.passages`), costs nothing, and says whether it was confident."""

    name = TIER

    def __init__(self, answerer: KnowledgeBaseAnswerer) -> None:
        self.answerer = answerer

    def _answer(self, messages: Sequence[ChatMessage], params: ChatParams) -> Answer:
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return self.answerer.answer(question=question, hits=list(params.passages))

    async def chat(self, messages: Sequence[ChatMessage], params: ChatParams) -> Completion:
        answer = self._answer(messages, params)
        return Completion(
            text=answer.text,
            model=TIER,
            usage=Usage(0, 0),
            finish_reason="stop",
            sources=tuple(answer.sources),
            confident=answer.confident,
            quality=answer.quality,
        )

    async def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[Delta]:
        completion = await self.chat(messages, params)
        for piece in stream_words(completion.text):
            yield Delta(text=piece)
        yield Delta(usage=completion.usage, finish_reason="stop")

    async def aclose(self) -> None:
        return None


def stream_words(text: str, *, words_per_chunk: int = 3) -> Iterator[str]:
    """The answer in small pieces, as a model would stream tokens, so clients render progressively."""
    words = text.split(" ")
    for start in range(0, len(words), words_per_chunk):
        yield " ".join(words[start : start + words_per_chunk]) + (" " if start + words_per_chunk < len(words) else "")
