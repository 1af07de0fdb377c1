"""Training an intent model from labelled rows: checks the data, holds out a stratified share to measure, fits the
head on the encoder's vectors of the rest, and packages the model refitted on everything."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from core.embeddings import OnnxEncoder, encode_sorted
from models.intent.evaluate import confusion, intent_metrics
from models.intent.head import fit_head
from models.intent.model import package
from models.training import Trained, TrainingDataError

HOLDOUT = 0.15
MIN_PER_LABEL = 2
RECIPE = "minilm-int8+lr"


def check_rows(rows: list[tuple[str, str]], *, oos_label: str | None) -> None:
    counts = Counter(label for _, label in rows)
    in_scope = {label: n for label, n in counts.items() if label != oos_label}
    if len(in_scope) < 2:
        raise TrainingDataError(f"needs at least 2 intents, has {len(in_scope)}")
    thin = sorted(label for label, n in counts.items() if n < MIN_PER_LABEL)
    if thin:
        raise TrainingDataError(
            f"every label needs at least {MIN_PER_LABEL} examples; these have fewer: {', '.join(thin[:10])}"
        )


def _holdout(labels: list[str], *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified: about HOLDOUT of each label held out, at least one row of each, at least one kept."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    for indices in by_label.values():
        indices = list(rng.permutation(indices))
        cut = min(len(indices) - 1, max(1, round(len(indices) * HOLDOUT)))
        test += indices[:cut]
        train += indices[cut:]
    return np.array(sorted(train)), np.array(sorted(test))


def train_intent(
    rows: list[tuple[str, str]],
    *,
    base_encoder_dir: Path,
    folder: Path,
    oos_label: str | None = None,
    seed: int = 0,
    c: float = 10.0,
) -> Trained:
    check_rows(rows, oos_label=oos_label)
    started = time.perf_counter()
    texts, labels = [t for t, _ in rows], [label for _, label in rows]
    encoder = OnnxEncoder.from_directory(base_encoder_dir)
    vectors = encode_sorted(encoder, texts)
    train, test = _holdout(labels, seed=seed)
    head, cv = fit_head(vectors[train], [labels[i] for i in train], oos_label=oos_label, c=c, seed=seed)
    predictions = head.predict(vectors[test])
    truth = [labels[i] for i in test]
    metrics = intent_metrics(predictions, truth, oos_label=oos_label)
    final, _ = fit_head(vectors, labels, oos_label=oos_label, c=c, seed=seed, calibrated_like=head)
    params = {
        "recipe": RECIPE,
        "C": c,
        "seed": seed,
        "oos_label": oos_label,
        "rows": len(rows),
        "labels": len(set(labels)),
        "holdout_rows": len(test),
        "temperature": round(final.temperature, 4),
        "threshold": round(final.threshold, 4),
        "floor": round(final.floor, 4),
        **{f"cv_{k}": v for k, v in cv.items() if not k.startswith("cv_")},
    }
    metrics |= {f"holdout_{k}": v for k, v in cv.items() if k.startswith("cv_")}
    metrics["train_seconds"] = time.perf_counter() - started
    card = {"recipe": RECIPE, "labels": final.labels, "oos_label": oos_label, "params": params}
    package(folder=folder, encoder_dir=base_encoder_dir, head=final, card=card)
    return Trained(folder, metrics, params, confusion(predictions, truth, oos_label=oos_label), rows)
