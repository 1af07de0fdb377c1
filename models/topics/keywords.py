"""Conversation topics without labels: TF-IDF over the customers' first questions, clustered per tenant, each
cluster named by its two heaviest terms ("card / delivery").

Labels are words the customers used, so they read the same from one run to the next even when a re-clustering
moves the boundaries; the intent model (custom-models issue) replaces topics where a tenant has trained one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_FOR_CLUSTERS = 12
MAX_TOPICS = 30
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Topics:
    ids: list[int]  # per text; -1: no topic (empty text)
    labels: list[str]  # per text


def assign(texts: Sequence[str | None], *, seed: int = 0) -> Topics:
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    present = [i for i, text in enumerate(texts) if text and text.strip()]
    ids, labels = [-1] * len(texts), [UNKNOWN] * len(texts)
    if not present:
        return Topics(ids, labels)
    vectorizer = TfidfVectorizer(
        stop_words="english",
        min_df=1 if len(present) < MIN_FOR_CLUSTERS else 2,
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b",  # noqa: S106 (a regex, not a password)
        sublinear_tf=True,
    )
    try:
        matrix = vectorizer.fit_transform([texts[i] for i in present])
    except ValueError:  # nothing but stop words
        return Topics(ids, labels)
    terms = np.asarray(vectorizer.get_feature_names_out())
    if len(present) < MIN_FOR_CLUSTERS:
        for row, i in enumerate(present):
            weights = matrix[row].toarray().ravel()
            if weights.any():
                ids[i], labels[i] = int(weights.argmax()), str(terms[weights.argmax()])
        return Topics(ids, labels)
    k = max(2, min(MAX_TOPICS, round(math.sqrt(len(present) / 4))))
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=2048).fit(matrix)
    names = []
    for centroid in model.cluster_centers_:
        top = terms[np.argsort(centroid)[::-1][:2]]
        names.append(" / ".join(str(t) for t in top))
    has_terms = np.diff(matrix.indptr) > 0  # rows with any known term (slicing rows one by one is slow)
    for row, i in enumerate(present):
        if has_terms[row]:
            ids[i] = int(model.labels_[row])
            labels[i] = names[ids[i]]
    return Topics(ids, labels)
