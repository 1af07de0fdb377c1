"""What a model is shown and which of its citations become sources; which questions may be answered from the cache."""

import pytest

from core.llm.base import ChatMessage
from core.llm.cache import is_standalone
from core.llm.kb import answer_quality, quality_features
from core.llm.prompt import MAX_HISTORY_MESSAGES, build_messages, cited_sources, grounding
from core.vectors import VectorHit


def hit(n: int, score: float) -> VectorHit:
    payload = {"document_id": f"d{n}", "title": f"Article {n}", "text": f"Passage {n}.", "source_url": None}
    return VectorHit(chunk_id=f"c{n}", score=score, dense_score=score, payload=payload)


def test_only_on_topic_passages_are_shown_numbered_in_order():
    passages = grounding([hit(1, 0.7), hit(2, 0.5), hit(3, 0.1)])
    assert [p.chunk_id for p in passages] == ["c1", "c2"]
    system = build_messages(question="q", passages=passages)[0]
    assert system.role == "system" and "[1] Article 1\nPassage 1." in system.content
    assert "[2] Article 2" in system.content


def test_the_conversation_goes_before_the_question_and_is_bounded():
    history = [ChatMessage("user" if i % 2 == 0 else "assistant", f"turn {i}") for i in range(20)]
    messages = build_messages(question="now?", passages=[], history=[ChatMessage("system", "x"), *history])
    assert [m.content for m in messages[1:-1]] == [f"turn {i}" for i in range(20 - MAX_HISTORY_MESSAGES, 20)]
    assert messages[-1] == ChatMessage("user", "now?") and "(none found)" in messages[0].content


def test_citations_become_sources_once_each_and_out_of_range_ones_are_ignored():
    passages = [hit(1, 0.7), hit(2, 0.6)]
    sources = cited_sources("Yes [2]. Also [1] and again [2], not [7] or [0].", passages)
    assert [s.document_id for s in sources] == ["d2", "d1"] and sources[0].title == "Article 2"
    assert cited_sources("No citations here.", passages) == []


@pytest.mark.parametrize(
    ("question", "earlier", "standalone"),
    [
        ("How much does it cost?", 0, True),  # the first question stands alone whatever its words
        ("How long does a refund to my card take?", 3, True),
        ("How much does it cost?", 1, False),
        ("And to Norway?", 2, False),
        ("What about express shipping?", 1, False),
        ("Is that free too?", 1, False),
        ("Why?", 4, False),
    ],
)
def test_a_question_leaning_on_earlier_turns_is_not_standalone(question, earlier, standalone):
    assert is_standalone(question, earlier_questions=earlier) is standalone


def test_the_kb_is_surer_the_further_its_best_passage_leads_another_documents():
    def passage(document: str, score: float) -> VectorHit:
        return VectorHit(
            chunk_id=f"{document}{score}", score=score, dense_score=score, payload={"document_id": document}
        )

    assert quality_features([passage("a", 0.8), passage("a", 0.7), passage("b", 0.6)]) == pytest.approx((0.8, 0.2))
    assert quality_features([passage("a", 0.8)]) == (0.8, 0.8), "no other document at all: nothing to confuse it with"
    five_of_one = [passage("a", score) for score in (0.8, 0.75, 0.7, 0.65, 0.6)]
    assert quality_features(five_of_one) == pytest.approx((0.8, 0.2)), "a rival, if any, scores below the weakest hit"
    close = answer_quality([passage("a", 0.7), passage("b", 0.69)])
    clear = answer_quality([passage("a", 0.7), passage("b", 0.4)])
    assert 0 < close < 0.5 < clear < 1
