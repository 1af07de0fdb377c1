"""`parley models train|evaluate intent` as an ML engineer runs them: real files, the real encoder, a real MLflow
store in a temp data directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.models.conftest import parley

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "banking77"
INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed", "pin_blocked")


def banking_subset(path: Path, split: str, per_intent: int) -> Path:
    with (DATA / f"{split}.csv").open(newline="") as source:
        rows = [r for r in csv.DictReader(source) if r["category"] in INTENTS]
    kept, seen = [], {}
    for row in rows:
        if seen.get(row["category"], 0) < per_intent:
            seen[row["category"]] = seen.get(row["category"], 0) + 1
            kept.append({"utterance": row["text"], "intent": row["category"]})
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["utterance", "intent"])
        writer.writeheader()
        writer.writerows(kept)
    return path


def test_train_then_evaluate_an_intent_model_and_a_second_tenant_stays_apart(env, tmp_path, encoder):
    train = banking_subset(tmp_path / "train.csv", "train", 12)
    test = banking_subset(tmp_path / "test.csv", "test", 20)
    columns = ["--text-col", "utterance", "--label-col", "intent"]
    trained = parley("models", "train", "intent", "--train", str(train), "--tenant", "t_cli_a", *columns, env=env)
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert result["model_uri"] == "models:/intent__t_cli_a/1" and result["champion"] is True
    assert result["metrics"]["accuracy"] > 0.6 and result["run_id"]
    evaluated = parley(
        "models", "evaluate", "intent", "--model", result["model_uri"], "--test", str(test), *columns, env=env
    )
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert set(metrics) >= {"accuracy", "macro_f1", "in_scope_accuracy", "n"} and metrics["n"] == 100
    assert metrics["accuracy"] > 0.8, metrics
    other = parley("models", "train", "intent", "--train", str(train), "--tenant", "t_cli_b", *columns, env=env)
    assert json.loads(other.stdout)["model_uri"] == "models:/intent__t_cli_b/1", "its own model, version 1"
    champion = parley(
        "models",
        "evaluate",
        "intent",
        "--model",
        "models:/intent__t_cli_a@champion",
        "--test",
        str(test),
        *columns,
        env=env,
    )
    assert json.loads(champion.stdout) == metrics


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "no column"),
        ("text,label\n", "no rows"),
        ("text,label\nhello,a\nhi,a\nhey,a\n", "at least 2 intents"),
        ("text,label\nhello,a\nhi,a\nbye,b\n", "at least 2 examples"),
        ("utterance,intent\nhello,a\n", "no column label, text"),
    ],
)
def test_a_bad_training_file_fails_clearly_and_logs_nothing(env, tmp_path, content, says):
    path = tmp_path / "train.csv"
    path.write_text(content)
    failed = parley("models", "train", "intent", "--train", str(path), env=env)
    assert failed.returncode == 1 and says in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "data" / "mlflow").exists(), "no run, no store: nothing was logged"
