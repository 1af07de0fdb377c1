"""The classifier on top of sentence vectors: multinomial logistic regression, temperature-scaled so its top
probability is a calibrated confidence, and an out-of-scope decision (an explicit out-of-scope class when the
training data has one, and a confidence threshold either way), all chosen on cross-validated predictions of the
training data only. Without out-of-scope examples there is no threshold, only a confidence floor (the 3rd percentile
of the confidence of correct cross-validated answers): a prediction below it is `uncertain`, which serving treats as
out of scope and the accuracy figures do not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.intent import IntentPrediction

HEAD_FILE = "head.npz"
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
    from sklearn.linear_model import LogisticRegression

    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    if calibrated_like is not None:
        final = LogisticRegression(C=c, max_iter=3000).fit(vectors, y)
        like = calibrated_like
        head = IntentHead(
            classes, final.coef_, final.intercept_, like.temperature, like.threshold, oos_label, like.floor
        )
        return head, {}
    return _fit_with_cv(vectors, y, classes, oos_label=oos_label, c=c, folds=folds, seed=seed)


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
    """(threshold, floor, report). The floor keeps 97% of the correct out-of-fold answers. With out-of-scope
    examples the threshold maximises the mean of in-scope accuracy and out-of-scope recall out of fold; without
    them there is none."""
    top, best = probs.max(axis=1), probs.argmax(axis=1)
    correct = top[best == y]
    floor = float(np.quantile(correct, 0.03)) if len(correct) else 0.0
    oos_index = classes.index(oos_label) if oos_label in classes else None
    is_oos = y == oos_index if oos_index is not None else np.zeros(len(y), dtype=bool)
    if not is_oos.any():
        return 0.0, floor, {"cv_accuracy": float((best == y).mean())}
    scores = []
    for threshold in np.unique(np.round(top, 3)):
        said_oos = (best == oos_index) | (top < threshold)
        in_scope_accuracy = ((best == y) & ~said_oos)[~is_oos].mean()
        oos_recall = said_oos[is_oos].mean()
        scores.append(((in_scope_accuracy + oos_recall) / 2, float(threshold), in_scope_accuracy, oos_recall))
    _, threshold, in_scope_accuracy, oos_recall = max(scores)
    report = {"cv_in_scope_accuracy": float(in_scope_accuracy), "cv_oos_recall": float(oos_recall)}
    return threshold, floor, report
