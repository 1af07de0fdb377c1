"""How good the extractive summarizer is on dialogues: ROUGE-1/2/L F1 (Google's `rouge-score`, Porter stemming, as
the DialogSum paper reports it) against DialogSum-style references.

A file is JSONL, one dialogue per line: `dialogue` ("#Person1#: ...\\n#Person2#: ...") and `summary`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.summarize import Turn

_SPEAKER = re.compile(r"^\s*(#[^#\s]+#)\s*:\s*(.*)$")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class DialogueDataError(ValueError):
    """The file cannot be evaluated on; the message says why, for a person to fix."""


@dataclass(frozen=True)
class Dialogue:
    turns: list[Turn]
    reference: str


def parse_dialogue(text: str) -> list[Turn]:
    """Turns of "#Person1#: ...\\n#Person2#: ..."; a line without a speaker continues the turn before it."""
    turns: list[Turn] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        found = _SPEAKER.match(line)
        if found:
            turns.append(Turn(found.group(1), found.group(2).strip()))
        elif turns:
            turns[-1] = Turn(turns[-1].role, f"{turns[-1].text} {line.strip()}")
        else:
            turns.append(Turn("", line.strip()))
    return turns


def read_dialogues(path: Path, *, limit: int | None = None) -> list[Dialogue]:
    """The file's dialogues (the first `limit`); DialogueDataError if unreadable, not JSONL, or without any."""
    dialogues = []
    try:
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DialogueDataError(f"{path}:{number}: not JSON ({exc.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get("dialogue"), str):
                    raise DialogueDataError(f"{path}:{number}: no `dialogue` string")
                if not isinstance(row.get("summary"), str) or not row["summary"].strip():
                    raise DialogueDataError(f"{path}:{number}: no `summary` string")
                dialogues.append(Dialogue(parse_dialogue(row["dialogue"]), row["summary"]))
                if limit is not None and len(dialogues) >= limit:
                    break
    except (OSError, UnicodeDecodeError) as exc:
        raise DialogueDataError(f"{path}: cannot be read as UTF-8 JSONL ({exc})") from None
    if not dialogues:
        raise DialogueDataError(f"{path}: no dialogues")
    return dialogues


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (in [0, 1]) of predictions against references, and n."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        for kind, score in scorer.score(reference, prediction).items():
            totals[kind] += score.fmeasure
    n = len(predictions)
    return {kind: (totals[kind] / n if n else 0.0) for kind in ROUGE_TYPES} | {"n": n}


def longest(turns: Sequence[Turn], count: int = 3) -> str:
    """The Longest-3 baseline of the DialogSum paper: the `count` longest utterances, in the order said."""
    chosen = sorted(sorted(range(len(turns)), key=lambda i: -len(turns[i].text))[:count])
    return " ".join(f"{turns[i].role}: {turns[i].text}" for i in chosen)


def evaluate_extractive(
    dialogues: Sequence[Dialogue], summarizer: Callable[[Sequence[Turn]], str] | None = None
) -> dict[str, float]:
    """ROUGE of `summarizer` (default: the lakehouse's extractive summarize_dialogue) over the dialogues."""
    from models.summarize.extractive import summarize_dialogue

    summarizer = summarizer or summarize_dialogue
    return rouge([summarizer(d.turns) for d in dialogues], [d.reference for d in dialogues])
