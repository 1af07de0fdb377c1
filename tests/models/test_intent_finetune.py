"""Fine-tuning the intent encoder (models/intent/finetune.py) and the recipes of models/intent/train.py, on a few
real Banking77 intents with a few steps: the encoder changes, the packaged model loads and predicts, the held-out
rows never reach the fine-tuning, a seed fixes the weights, and "auto" fine-tunes only where it pays."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from core.embeddings import OnnxEncoder, ensure_model
from models.intent import finetune
from models.intent.finetune import FinetuneConfig, finetune_encoder
from models.intent.model import ENCODER_DIR, IntentModel
from models.intent.train import _holdout, choose_recipe, finetune_config, train_intent
from models.training import TrainingDataError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "banking77"
INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed", "pin_blocked")
# A handful of steps: enough to move the weights, little enough for a test.
QUICK = FinetuneConfig(objective="mnrl+ce", pairs=25, pair_batch=5, epochs=1, batch=16, max_len=32, max_seconds=120)


def banking(split: str, per_intent: int) -> list[tuple[str, str]]:
    with (DATA / f"{split}.csv").open(newline="") as source:
        rows, seen = [], {}
        for row in csv.DictReader(source):
            if row["category"] in INTENTS and seen.get(row["category"], 0) < per_intent:
                seen[row["category"]] = seen.get(row["category"], 0) + 1
                rows.append((row["text"], row["category"]))
    return rows


def test_finetuning_changes_the_encoder_and_never_sees_the_held_out_rows(models_dir, tmp_path, monkeypatch):
    rows = banking("train", 12)
    tuned_on: list[str] = []
    real = finetune.finetune_encoder

    def spy(texts, labels, **kwargs):
        tuned_on.extend(texts)
        return real(texts, labels, **kwargs)

    monkeypatch.setattr(finetune, "finetune_encoder", spy)
    base_dir = ensure_model(models_dir)
    trained = train_intent(
        rows, base_encoder_dir=base_dir, folder=tmp_path / "model", recipe="finetune", finetune=QUICK
    )

    _, held_out = _holdout([label for _, label in rows], seed=0)
    held_out_texts = {rows[i][0] for i in held_out}
    assert tuned_on and held_out_texts and not held_out_texts & set(tuned_on)
    assert len(tuned_on) == len(rows) - len(held_out)
    assert trained.params["recipe"] == "minilm-ft-int8+lr" and trained.params["ft_objective"] == "mnrl+ce"
    assert trained.params["ft_steps_mnrl"] > 0 and trained.params["ft_steps_ce"] > 0
    assert trained.metrics["train_seconds"] > 0 and trained.metrics["n"] == len(held_out)

    model = IntentModel.load(trained.folder)
    assert model.card["recipe"] == "minilm-ft-int8+lr" and sorted(model.labels) == sorted(INTENTS)
    probe = [text for text, _ in banking("test", 4)]
    stock = OnnxEncoder.from_directory(base_dir).encode(probe)
    tuned = OnnxEncoder.from_directory(trained.folder / ENCODER_DIR).encode(probe)
    assert tuned.shape == stock.shape and np.abs(tuned - stock).max() > 1e-3, "the encoder moved"
    assert np.allclose(np.linalg.norm(tuned, axis=1), 1, atol=1e-3), "still L2-normalised, as serving expects"

    test = banking("test", 20)
    predictions = model.predict([text for text, _ in test])
    accuracy = np.mean([p.intent == label for p, (_, label) in zip(predictions, test, strict=True)])
    assert accuracy > 0.8, accuracy
    one = model.predict_one("my card still has not arrived")
    assert one.intent == "card_arrival" and not one.out_of_scope


def test_a_seed_fixes_the_weights_and_another_seed_moves_them(tmp_path):
    from safetensors.numpy import load_file

    rows = banking("train", 6)
    texts, labels = [t for t, _ in rows], [label for _, label in rows]
    config = FinetuneConfig(objective="mnrl", pairs=15, pair_batch=5, max_len=32, max_seconds=120)

    def weights(name: str, seed: int) -> dict[str, np.ndarray]:
        folder, report = finetune_encoder(
            texts, labels, out_dir=tmp_path / name, config=FinetuneConfig(**{**config.__dict__, "seed": seed})
        )
        assert report.steps == {"mnrl": 3}
        return load_file(folder / "model.safetensors")

    first, again, other = weights("a", 0), weights("b", 0), weights("c", 1)
    assert first.keys() == again.keys()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert any(not np.array_equal(first[k], other[k]) for k in first)
    layer = "encoder.layer.0.attention.self.query.weight"
    stock = load_file(finetune.base_weights() / "model.safetensors")
    assert not np.array_equal(first[layer], stock[layer])
    embeddings = "embeddings.word_embeddings.weight"
    assert np.array_equal(first[embeddings], stock[embeddings]), "the word-embedding table stays frozen"


def test_precision_follows_the_cpu_unless_asked_and_an_unknown_one_is_refused(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    rows = banking("train", 6)
    texts, labels = [t for t, _ in rows], [label for _, label in rows]
    config = FinetuneConfig(objective="mnrl", pairs=15, pair_batch=5, max_len=32, max_seconds=120)

    def run(name: str, precision: str):
        folder, report = finetune_encoder(
            texts, labels, out_dir=tmp_path / name, config=FinetuneConfig(**{**config.__dict__, "precision": precision})
        )
        return load_file(folder / "model.safetensors"), report

    monkeypatch.setattr(finetune, "native_bf16", lambda: False)
    emulated, report = run("auto-without", "auto")
    assert report.precision == "fp32" and report.steps == {"mnrl": 3}
    monkeypatch.setattr(finetune, "native_bf16", lambda: True)
    native, report = run("auto-with", "auto")
    assert report.precision == "bf16" and report.steps == {"mnrl": 3}
    asked, report = run("asked", "fp32")
    assert report.precision == "fp32"
    layer = "encoder.layer.0.attention.self.query.weight"
    assert native[layer].dtype == np.float32, "bf16 autocast keeps the weights float32"
    assert np.array_equal(asked[layer], emulated[layer]) and not np.array_equal(native[layer], emulated[layer])
    with pytest.raises(ValueError, match="precision"):
        run("bad", "fp16")


def labelled(intents: int, per_intent: int, oos: int = 0) -> list[tuple[str, str]]:
    rows = [(f"text {i} {j}", f"intent_{i}") for i in range(intents) for j in range(per_intent)]
    return rows + [(f"other {j}", "oos") for j in range(oos)]


def test_auto_fine_tunes_only_with_enough_intents_and_examples():
    assert choose_recipe(labelled(5, 12), oos_label=None)[0] == "frozen"  # few intents
    assert choose_recipe(labelled(77, 6), oos_label=None)[0] == "frozen"  # few examples each
    assert choose_recipe(labelled(77, 10), oos_label=None)[0] == "finetune"  # Banking77, 10 per intent
    assert choose_recipe(labelled(77, 130), oos_label=None)[0] == "finetune"  # Banking77, all of it
    # out-of-scope rows are not an intent and do not count as its examples
    assert choose_recipe(labelled(19, 100, oos=500), oos_label="oos")[0] == "frozen"
    assert choose_recipe(labelled(150, 100, oos=100), oos_label="oos")[0] == "finetune"  # CLINC150

    few, full = (
        finetune_config(labelled(77, 10), oos_label=None, seed=3),
        finetune_config(labelled(77, 130), oos_label=None, seed=3),
    )
    assert few.objective == "mnrl+ce" and few.max_len == 32 and few.seed == 3
    assert full.objective == "ce" and full.epochs == 3 and full.max_seconds > few.max_seconds


def test_an_unknown_recipe_is_refused_before_any_work(tmp_path):
    with pytest.raises(TrainingDataError, match="recipe"):
        train_intent(labelled(5, 4), base_encoder_dir=tmp_path, folder=tmp_path / "m", recipe="bert")
