"""Trained sentiment models as an ML engineer and the lakehouse use them: `parley models train|evaluate sentiment`
on real TweetEval tweets into a real MLflow store in a temp data directory, and the lakehouse's message_sentiment
scoring a tenant's messages with its champion."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from models.sentiment import LABELS
from tests.models.conftest import parley

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tweeteval_sentiment"


def tweets() -> list[tuple[str, int]]:
    texts = (DATA / "val_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (DATA / "val_labels.txt").read_text().split()]
    return list(zip(texts, labels, strict=True))


def subset(path: Path, *, per_label: int, skip: int = 0, numeric: bool = False, shuffle_labels: bool = False) -> Path:
    """The first `per_label` tweets of each label after the first `skip` of each, as a CSV (tweet, sentiment)."""
    seen: dict[int, int] = {}
    rows = []
    for text, label in tweets():
        seen[label] = seen.get(label, 0) + 1
        if skip < seen[label] <= skip + per_label:
            rows.append([text, label])
    if shuffle_labels:  # a model trained on these learns nothing: a worse challenger
        shuffled = [label for _, label in rows]
        random.Random(0).shuffle(shuffled)
        rows = [[text, label] for (text, _), label in zip(rows, shuffled, strict=True)]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["tweet", "sentiment"])
        writer.writerows([text, label if numeric else LABELS[label]] for text, label in rows)
    return path


COLUMNS = ["--text-col", "tweet", "--label-col", "sentiment"]


def train(path: Path, tenant: str, env, *extra) -> dict:
    done = parley(
        "models",
        "train",
        "sentiment",
        "--train",
        str(path),
        "--tenant",
        tenant,
        "--recipe",
        "linear",
        *COLUMNS,
        *extra,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def evaluate(model: str, path: Path, env, *extra) -> dict:
    done = parley("models", "evaluate", "sentiment", "--model", model, "--test", str(path), *COLUMNS, *extra, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_train_then_evaluate_a_sentiment_model_against_vader(env, tmp_path, encoder):
    training = subset(tmp_path / "train.csv", per_label=100, numeric=True)
    test = subset(tmp_path / "test.csv", per_label=50, skip=100)
    result = train(training, "t_sent_a", env, "--numeric-labels")
    assert result["model_uri"] == "models:/sentiment__t_sent_a/1" and result["champion"] is True
    metrics = result["metrics"]
    assert metrics["n"] == 75 and metrics["macro_recall"] > 0.5 and "vader_macro_recall" in metrics
    assert result["run_id"]
    evaluated = evaluate(result["model_uri"], test, env)
    assert set(evaluated) >= {"macro_recall", "accuracy", "macro_f1", "n"} and evaluated["n"] == 150
    assert evaluated["macro_recall"] > 0.55, evaluated
    assert evaluate("models:/sentiment__t_sent_a@champion", test, env) == evaluated
    vader = evaluate("vader", test, env)
    assert vader["n"] == 150 and 0.4 < vader["macro_recall"] < evaluated["macro_recall"] + 0.1


def test_a_worse_challenger_is_not_promoted_and_two_tenants_stay_apart(env, tmp_path, encoder):
    good = subset(tmp_path / "good.csv", per_label=100)
    worse = subset(tmp_path / "worse.csv", per_label=100, shuffle_labels=True)
    first = train(good, "t_sent_a", env)
    second = train(worse, "t_sent_a", env)
    assert second["model_uri"] == "models:/sentiment__t_sent_a/2" and second["champion"] is False
    assert second["metrics"]["macro_recall"] < first["metrics"]["macro_recall"]
    assert "does not beat" in second["promotion"]
    other = train(worse, "t_sent_b", env)
    assert other["model_uri"] == "models:/sentiment__t_sent_b/1" and other["champion"] is True, "its own first model"

    from models.sentiment.model import champions

    store = f"sqlite:///{tmp_path / 'data' / 'mlflow' / 'mlflow.db'}"
    assert champions(store) == {"t_sent_a": 1, "t_sent_b": 1}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "no column"),
        ("tweet,sentiment\n", "no rows"),
        ("tweet,sentiment\ngreat,happy\nawful,sad\n", "labels must be negative, neutral or positive"),
        ("tweet,sentiment\ngreat,2\nawful,0\n", "numeric-labels"),
        ("tweet,sentiment\ngreat,positive\nawful,negative\nok,neutral\n", "at least 4 examples"),
        ("tweet,sentiment\n\xff\xfe,positive\n", "cannot be read"),
    ],
)
def test_a_bad_training_file_fails_clearly_and_logs_nothing(env, tmp_path, content, says):
    path = tmp_path / "train.csv"
    path.write_bytes(content.encode("latin-1"))
    failed = parley("models", "train", "sentiment", "--train", str(path), *COLUMNS, env=env)
    assert failed.returncode == 1 and says in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "mlflow").exists(), "no run, no store: nothing was logged"


def test_the_e5_recipe_packages_a_scorer_without_copying_its_encoder(tmp_path, models_dir):
    from core.embeddings import ensure_model
    from models.sentiment.model import ENCODER_DIR, E5Encoder, SentimentModel
    from models.sentiment.train import train_sentiment

    rows = [(text, str(label)) for text, label in tweets()[:160]]
    trained = train_sentiment(
        rows, base_encoder_dir=ensure_model(models_dir), folder=tmp_path / "model", recipe="e5", numeric_labels=True
    )
    assert trained.params["recipe"] == "e5-small-q4+vader+lr+offsets" and trained.metrics["n"] == 40
    assert not (trained.folder / ENCODER_DIR).exists(), "e5 comes from its pinned package, not the folder"
    model = SentimentModel.load(trained.folder)
    assert isinstance(model.encoders, E5Encoder)
    texts = ["I love this, thank you so much!", "This is the worst service ever.", "The meeting is on Tuesday."]
    scores = model.score(texts)
    assert set(scores.labels) <= set(LABELS) and len(scores.labels) == 3
    assert scores.scores.dtype == np.float32 and np.all(np.abs(scores.scores) <= 1.0)
    assert scores.scores[0] > scores.scores[1], "positive above negative"
