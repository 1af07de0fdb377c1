"""`parley models evaluate summarize`: ROUGE of the extractive summarizer on real DialogSum dialogues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.summarize.evaluate import longest, parse_dialogue, read_dialogues, rouge
from tests.models.conftest import parley

DEV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dialogsum" / "dialogsum.dev.jsonl"


def test_rouge_is_one_for_the_reference_itself_and_zero_for_nothing_in_common():
    perfect = rouge(["#Person1# asks about the rent."], ["#Person1# asks about the rent."])
    assert perfect == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "n": 1}
    none = rouge(["bananas grow quickly"], ["the meeting was moved"])
    assert none["rouge1"] == none["rouge2"] == none["rougeL"] == 0.0


def test_a_dialogue_parses_into_speaker_turns_and_a_wrapped_line_joins_its_turn():
    turns = parse_dialogue("#Person1#: Hello, how are you?\n#Person2#: Fine.\nAnd you?\n#Person1#: Good.")
    assert [(t.role, t.text) for t in turns] == [
        ("#Person1#", "Hello, how are you?"),
        ("#Person2#", "Fine. And you?"),
        ("#Person1#", "Good."),
    ]
    assert longest(turns, 1) == "#Person1#: Hello, how are you?"


def test_evaluate_summarize_on_dialogsum_beats_the_longest_3_baseline(env):
    done = parley("models", "evaluate", "summarize", "--test", str(DEV), "--limit", "100", env=env)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures) == {"rouge1", "rouge2", "rougeL", "n"} and figures["n"] == 100
    assert all(0.0 < figures[k] < 1.0 for k in ("rouge1", "rouge2", "rougeL"))
    baseline = rouge(
        [longest(d.turns) for d in read_dialogues(DEV, limit=100)],
        [d.reference for d in read_dialogues(DEV, limit=100)],
    )
    assert figures["rouge1"] > baseline["rouge1"] and figures["rougeL"] > baseline["rougeL"], (figures, baseline)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "no dialogues"),
        ('{"dialogue": "#Person1#: hi"\n', "not JSON"),
        ('{"text": "#Person1#: hi", "summary": "x"}\n', "no `dialogue`"),
        ('{"dialogue": "#Person1#: hi"}\n', "no `summary`"),
    ],
)
def test_a_bad_dialogue_file_fails_with_one_line(env, tmp_path, content, says):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    failed = parley("models", "evaluate", "summarize", "--test", str(path), env=env)
    assert failed.returncode == 1 and says in failed.stderr and "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
