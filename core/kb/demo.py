"""The demo tenant's knowledge base: StackExchange FAQ threads (../shared/data/stackfaq, CC BY-SA), one each."""

from __future__ import annotations

import json
from pathlib import Path

from core.kb.parsing import ParsedDocument, normalise


def _as_list(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def stackfaq_documents(path: Path) -> list[ParsedDocument]:
    """Each thread becomes a document titled with its question; its answers are the paragraphs."""
    threads = json.loads(path.read_text(encoding="utf-8"))["root"]["qapair"]
    return [
        ParsedDocument(
            title=normalise(thread["question"]),
            text="\n\n".join(normalise(answer) for answer in _as_list(thread["answer"]) if answer and answer.strip()),
            media_type="application/json",
            metadata={"thread": number},
        )
        for number, thread in enumerate(threads)
    ]
