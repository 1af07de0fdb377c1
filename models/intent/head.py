"""The classifier on top of sentence vectors: multinomial logistic regression, temperature-scaled so its top
probability is a calibrated confidence, and an out-of-scope decision (an explicit out-of-scope class when the
training data has one, and a confidence threshold either way), all chosen on predictions of rows the model did not
learn from: cross-validated predictions of the training data with the stock encoder, held-out rows the encoder never
saw when it was fine-tuned (`calibrate`). Without out-of-scope examples there is no threshold, only a confidence floor
(the 3rd percentile of the confidence of correct answers): a prediction below it is `uncertain`, which serving treats
as out of scope and the accuracy figures do not.

The threshold is the one that catches the most out-of-scope rows while losing at most IN_SCOPE_COST of in-scope
accuracy against no threshold. (Maximising the mean of in-scope accuracy and out-of-scope recall, the earlier rule,
weighs a missed out-of-scope question like a wrong answer to every in-scope one: on CLINC150 it chose 0.56 and cut
in-scope accuracy from 96 to 90 for out-of-scope recall 93, where out-of-scope questions are a few percent of
traffic.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.intent import IntentPrediction

HEAD_FILE = "head.npz"
IN_SCOPE_COST = 0.005  # the in-scope accuracy the out-of-scope threshold may cost
META_FILE = "head.json"


@dataclass
class IntentHead:
    labels: list[str]
    weights: np.ndarray  # [classes, dim]
    bias: np.ndarray  # [classes]
    temperature: float = 1.0
    threshold: float = 0.0  # a top probability below this is out of scope (learnt from out-of-scope examples)
    oos_label: str | None = None  # the class that means out of scope, when trained with one
    floor: float = 0.0  # a top probability below this is uncertain

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = (vectors @ self.weights.T + self.bias) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, vectors: np.ndarray) -> list[IntentPrediction]:
        probs = self.probabilities(vectors)
        best = probs.argmax(axis=1)
        predictions = []
        for row, index in enumerate(best):
            label, confidence = self.labels[index], float(probs[row, index])
            out = label == self.oos_label or confidence < self.threshold
            predictions.append(IntentPrediction(None if out else label, confidence, out, confidence < self.floor))
        return predictions

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / HEAD_FILE, weights=self.weights.astype(np.float32), bias=self.bias.astype(np.float32))
        meta = {
            "labels": self.labels,
            "temperature": self.temperature,
            "threshold": self.threshold,
            "oos_label": self.oos_label,
            "floor": self.floor,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> IntentHead:
        arrays = np.load(folder / HEAD_FILE)
        meta = json.loads((folder / META_FILE).read_text())
        return cls(weights=arrays["weights"], bias=arrays["bias"], **meta)


def fit_head(
    vectors: np.ndarray,
    labels: list[str],
    *,
    oos_label: str | None = None,
    c: float = 10.0,
    folds: int = 5,
    seed: int = 0,
    calibrated_like: IntentHead | None = None,
) -> tuple[IntentHead, dict[str, float]]:
    """Fit the head; returns it and what cross-validation said (the threshold's in-scope and out-of-scope rates).
    With `calibrated_like`, its temperature, threshold and floor are kept and no cross-validation runs (the final
    refit on every row, after the held-out measurement)."""

    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    if calibrated_like is not None:
        head = fit_linear(vectors, labels, oos_label=oos_label, c=c)
        like = calibrated_like
        head.temperature, head.threshold, head.floor = like.temperature, like.threshold, like.floor
        return head, {}
    return _fit_with_cv(vectors, y, classes, oos_label=oos_label, c=c, folds=folds, seed=seed)


def fit_linear(vectors: np.ndarray, labels: list[str], *, oos_label: str | None = None, c: float = 10.0) -> IntentHead:
    """The logistic regression alone, uncalibrated (temperature 1, no threshold, no floor)."""
    from sklearn.linear_model import LogisticRegression

    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    model = LogisticRegression(C=c, max_iter=3000).fit(vectors, y)
    return IntentHead(classes, model.coef_, model.intercept_, oos_label=oos_label)


def _fit_with_cv(vectors, y, classes, *, oos_label, c, folds, seed) -> tuple[IntentHead, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(y).min())
    k = max(2, min(folds, smallest))
    oof = np.zeros((len(y), len(classes)))
    for train_index, test_index in StratifiedKFold(k, shuffle=True, random_state=seed).split(vectors, y):
        model = LogisticRegression(C=c, max_iter=3000).fit(vectors[train_index], y[train_index])
        # A fold can miss a class (few-shot): place its columns by the model's own classes.
        oof[np.ix_(test_index, model.classes_)] = model.decision_function(vectors[test_index]).reshape(
            len(test_index), -1
        )
    temperature = _temperature(oof, y)
    final = LogisticRegression(C=c, max_iter=3000).fit(vectors, y)
    head = IntentHead(
        labels=classes, weights=final.coef_, bias=final.intercept_, temperature=temperature, oos_label=oos_label
    )
    probs = _softmax(oof / temperature)
    head.threshold, head.floor, report = _threshold(probs, y, classes, oos_label)
    return head, {"cv_folds": k, "temperature": temperature, **report}


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of the out-of-fold predictions."""
    best, best_nll = 1.0, np.inf
    for temperature in np.geomspace(0.05, 20, 60):
        probs = _softmax(logits / temperature)
        nll = -np.log(probs[np.arange(len(y)), y] + 1e-12).mean()
        if nll < best_nll:
            best, best_nll = float(temperature), nll
    return best


def _threshold(
    probs: np.ndarray, y: np.ndarray, classes: list[str], oos_label: str | None
) -> tuple[float, float, dict]:
    """(threshold, floor, report). The floor keeps 97% of the correct answers. With out-of-scope examples the
    threshold is the lowest one with the best out-of-scope recall among those within IN_SCOPE_COST of the in-scope
    accuracy without a threshold; without them there is none."""
    top, best = probs.max(axis=1), probs.argmax(axis=1)
    correct = top[best == y]
    floor = float(np.quantile(correct, 0.03)) if len(correct) else 0.0
    oos_index = classes.index(oos_label) if oos_label in classes else None
    is_oos = y == oos_index if oos_index is not None else np.zeros(len(y), dtype=bool)
    if not is_oos.any() or is_oos.all():
        return 0.0, floor, {"cv_accuracy": float((best == y).mean())}
    curve = []
    for threshold in [0.0, *np.unique(np.round(top, 3))]:
        said_oos = (best == oos_index) | (top < threshold)
        in_scope_accuracy = float(((best == y) & ~said_oos)[~is_oos].mean())
        oos_recall = float(said_oos[is_oos].mean())
        curve.append((float(threshold), in_scope_accuracy, oos_recall))
    allowed = curve[0][1] - IN_SCOPE_COST
    threshold, in_scope_accuracy, oos_recall = max(
        (point for point in curve if point[1] >= allowed), key=lambda point: (point[2], -point[0])
    )
    report = {"cv_in_scope_accuracy": in_scope_accuracy, "cv_oos_recall": oos_recall}
    return threshold, floor, report


def calibrate(
    logits: np.ndarray, y: np.ndarray, classes: list[str], oos_label: str | None
) -> tuple[float, float, float, dict]:
    """(temperature, threshold, floor, report) from raw logits of rows the model did not learn from. Rows that are
    all answered right say nothing about the temperature (the likelihood only grows as it falls): it stays 1."""
    temperature = _temperature(logits, y) if (logits.argmax(axis=1) != y).any() else 1.0
    threshold, floor, report = _threshold(_softmax(logits / temperature), y, classes, oos_label)
    return temperature, threshold, floor, {"temperature": temperature, **report}
