import numpy as np

from core.vectors import IDENTIFIER_LEXICAL_WEIGHT, LEXICAL_WEIGHT, _Ranked, fuse, lexical_weight

QUERY = np.array([1.0, 0.0], dtype=np.float32)


def ranked(point_id, chunk_id=None, dense=(0.5, 0.5)):
    return _Ranked(point_id, {"chunk_id": chunk_id or point_id, "document_id": "d"}, list(dense))


def test_identifiers_lean_on_exact_words():
    assert lexical_weight("where is part XK-4471?") == IDENTIFIER_LEXICAL_WEIGHT
    assert lexical_weight("error E1234 when booting") == IDENTIFIER_LEXICAL_WEIGHT
    assert lexical_weight("how do I reset my password") == LEXICAL_WEIGHT


def test_dense_leads_a_plain_question_and_words_lead_an_identifier():
    # "d" is the dense ranking's last but the only chunk holding the query's exact words.
    by_dense = [ranked("a"), ranked("b"), ranked("c"), ranked("d")]
    by_words = [ranked("d")]
    assert fuse(QUERY, "a plain question", by_dense, by_words, 4)[0].chunk_id == "a"
    assert fuse(QUERY, "code ZX81", by_dense, by_words, 4)[0].chunk_id == "d"


def test_a_title_point_folds_into_its_chunk_and_ties_break_stably():
    by_dense = [ranked("title-of-1", chunk_id="chunk-1", dense=(0.9, 0.1)), ranked("chunk-2", dense=(0.2, 0.9))]
    by_words = [ranked("chunk-1", dense=(0.8, 0.2))]
    hits = fuse(QUERY, "question", by_dense, by_words, 10)
    assert [hit.chunk_id for hit in hits] == ["chunk-1", "chunk-2"]
    assert hits[0].dense_score > hits[1].dense_score
    assert fuse(QUERY, "question", by_dense, by_words, 10) == hits
