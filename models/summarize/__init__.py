"""Conversation summaries: an extractive summarizer by default, the router's LLM tier where a tenant allows it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    role: str  # user, assistant, agent (or a speaker's name in other corpora)
    text: str
