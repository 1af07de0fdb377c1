"""What a model is asked when it summarises a conversation for the lakehouse: the transcript and the outcome, and
an instruction to use only what was said."""

from __future__ import annotations

from collections.abc import Sequence

from core.llm.base import ChatMessage
from models.summarize import Turn

MAX_TRANSCRIPT_CHARS = 6000  # the end of a very long conversation matters more than its middle
SPEAKER = {"user": "Customer", "assistant": "Assistant", "agent": "Agent"}
INSTRUCTION = (
    "Summarise this customer-support conversation for the support team in at most two sentences: first the "
    "customer's problem, then how it ended. Use only what was said; do not add advice. The conversation's outcome "
    "as recorded: {outcome}."
)


def summary_prompt(turns: Sequence[Turn], *, outcome: str) -> list[ChatMessage]:
    lines = [f"{SPEAKER.get(turn.role, turn.role)}: {turn.text.strip()}" for turn in turns if turn.text.strip()]
    transcript = "\n".join(lines)
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        head = lines[0]
        transcript = head + "\n…\n" + transcript[-(MAX_TRANSCRIPT_CHARS - len(head)) :]
    return [ChatMessage("system", INSTRUCTION.format(outcome=outcome)), ChatMessage("user", transcript)]


def clean(text: str) -> str:
    return " ".join(text.split()).strip()
