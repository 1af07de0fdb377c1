"""Sentiment of customer messages: one interface, a lexicon baseline (VADER) and trained models (the custom-models
issue), so the pipelines can swap one for the other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Scores:
    labels: list[str]  # one of LABELS per text
    scores: np.ndarray  # float32 in [-1, 1]: negative to positive


class SentimentScorer(Protocol):
    name: str  # recorded beside every score, so a table says which scorer wrote it

    def score(self, texts: Sequence[str]) -> Scores: ...
