"""The figures an intent model is judged by, on labelled rows where `oos_label` marks out-of-scope ones."""

from __future__ import annotations

from collections.abc import Sequence

from models.intent import IntentPrediction

OUT_OF_SCOPE = "oos"  # how a prediction of "out of scope" is written when the data names no out-of-scope label


def intent_metrics(
    predictions: Sequence[IntentPrediction], truth: Sequence[str], *, oos_label: str | None = None
) -> dict[str, float]:
    """accuracy, macro_f1 (over every label, out of scope included), in_scope_accuracy, oos_recall, oos_precision, n."""
    from sklearn.metrics import f1_score

    oos = oos_label or OUT_OF_SCOPE
    predicted = [p.intent if not p.out_of_scope else oos for p in predictions]
    truth = list(truth)
    n = len(truth)
    in_scope = [i for i, label in enumerate(truth) if label != oos]
    said_oos = [i for i, label in enumerate(predicted) if label == oos]
    really_oos = [i for i, label in enumerate(truth) if label == oos]
    metrics = {
        "accuracy": sum(p == t for p, t in zip(predicted, truth, strict=True)) / n if n else 0.0,
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)) if n else 0.0,
        "in_scope_accuracy": sum(predicted[i] == truth[i] for i in in_scope) / len(in_scope) if in_scope else 0.0,
        "n": float(n),
    }
    if really_oos:
        metrics["oos_recall"] = sum(predicted[i] == oos for i in really_oos) / len(really_oos)
        metrics["oos_precision"] = sum(truth[i] == oos for i in said_oos) / len(said_oos) if said_oos else 0.0
    return metrics


def confusion(predictions: Sequence[IntentPrediction], truth: Sequence[str], *, oos_label: str | None = None) -> dict:
    """{labels, matrix}: rows are the true labels, columns the predicted ones (for the run's artifact)."""
    oos = oos_label or OUT_OF_SCOPE
    predicted = [p.intent if not p.out_of_scope else oos for p in predictions]
    labels = sorted(set(truth) | set(predicted))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t]][index[p]] += 1
    return {"labels": labels, "matrix": matrix}
