"""VADER, the lexicon baseline: no training, about 27,000 short messages a second on one core here.

Labels use VADER's documented thresholds on the compound score (>= 0.05 positive, <= -0.05 negative). Large batches
are split over worker processes (forkserver: the workers import only VADER, never the caller's threads).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache

import numpy as np

from models.sentiment import Scores

THRESHOLD = 0.05
PARALLEL_FROM = 50_000  # below this, starting workers costs more than it saves


@cache
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _compound(texts: Sequence[str]) -> list[float]:
    analyzer = _analyzer()
    return [analyzer.polarity_scores(text or "")["compound"] for text in texts]


def label(compound: float) -> str:
    if compound >= THRESHOLD:
        return "positive"
    if compound <= -THRESHOLD:
        return "negative"
    return "neutral"


class VaderScorer:
    name = "vader"

    def __init__(self, *, processes: int | None = None) -> None:
        self.processes = processes or min(2, os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None  # started at the first large batch, kept for the next ones

    def score(self, texts: Sequence[str]) -> Scores:
        texts = list(texts)
        if len(texts) < PARALLEL_FROM or self.processes == 1:
            compound = _compound(texts)
        else:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(self.processes, mp_context=context)
            size = -(-len(texts) // (self.processes * 4))
            chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
            compound = [value for part in self._pool.map(_compound, chunks) for value in part]
        return Scores(labels=[label(c) for c in compound], scores=np.asarray(compound, dtype=np.float32))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
