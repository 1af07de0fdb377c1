import numpy as np

from core.vectors import IDENTIFIER_LEXICAL_WEIGHT, LEXICAL_WEIGHT, _Fused, _hits, _Ranked, fuse, lexical_weight


def dense(point_id, cosine, chunk_id=None):
    return _Ranked(point_id, chunk_id or point_id, cosine)


def words(point_id, chunk_id=None):
    return _Ranked(point_id, chunk_id or point_id)


def test_identifiers_lean_on_exact_words():
    assert lexical_weight("where is part XK-4471?") == IDENTIFIER_LEXICAL_WEIGHT
    assert lexical_weight("error E1234 when booting") == IDENTIFIER_LEXICAL_WEIGHT
    assert lexical_weight("how do I reset my password") == LEXICAL_WEIGHT


def test_dense_leads_a_plain_question_and_words_lead_an_identifier():
    # "d" is the dense ranking's last but the only chunk holding the query's exact words.
    by_dense = [dense("a", 0.9), dense("b", 0.8), dense("c", 0.7), dense("d", 0.6)]
    by_words = [words("d")]
    assert fuse("a plain question", by_dense, by_words, 4)[0].chunk_id == "a"
    assert fuse("code ZX81", by_dense, by_words, 4)[0].chunk_id == "d"


def test_a_title_point_folds_into_its_chunk_and_ties_break_stably():
    by_dense = [dense("title-of-1", 0.9, chunk_id="chunk-1"), dense("chunk-2", 0.2)]
    by_words = [words("chunk-1")]
    fused = fuse("question", by_dense, by_words, 10)
    assert [hit.chunk_id for hit in fused] == ["chunk-1", "chunk-2"]
    assert fused[0].point_id == "title-of-1" and fused[0].cosine == 0.9
    assert fuse("question", by_dense, by_words, 10) == fused


def test_the_limit_counts_chunks_not_points():
    by_dense = [dense("title-of-1", 0.9, chunk_id="chunk-1"), dense("chunk-1", 0.8), dense("chunk-2", 0.7)]
    assert [hit.chunk_id for hit in fuse("question", by_dense, [], 2)] == ["chunk-1", "chunk-2"]


def test_a_hit_found_only_by_its_words_gets_its_cosine_from_its_vector():
    query = np.array([1.0, 0.0], dtype=np.float32)
    fused = [_Fused("a", "a", 0.1, 0.7), _Fused("b", "b", 0.05, None), _Fused("gone", "gone", 0.01, 0.5)]
    records = {"a": ({"text": "A"}, None), "b": ({"text": "B"}, [0.6, 0.8])}
    hits = _hits(query, fused, records)
    assert [(hit.chunk_id, round(hit.dense_score, 3), hit.payload["text"]) for hit in hits] == [
        ("a", 0.7, "A"),
        ("b", 0.6, "B"),
    ]
