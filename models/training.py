"""What every kind of tenant model shares: labelled rows read from a file, the result of a training run, and the
step that logs it to the registry and promotes it only if it beats the champion on its held-out rows."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.registry import Registry, fingerprint

# What a challenger must beat the champion on, per kind (measured on the challenger's held-out rows).
PROMOTION_METRIC = {"intent": "macro_f1", "sentiment": "macro_recall"}


class TrainingDataError(ValueError):
    """The training data cannot train a model; the message says why, for a person to fix."""


@dataclass(frozen=True)
class Trained:
    folder: Path
    metrics: dict[str, float]  # measured on the held-out rows
    params: dict[str, object]
    confusion: dict
    rows: list[tuple[str, str]]


def read_rows(path: Path, *, text_col: str = "text", label_col: str = "label") -> list[tuple[str, str]]:
    """(text, label) rows of a CSV file; TrainingDataError if it is unreadable, lacks the columns, or is empty."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            missing = {text_col, label_col} - set(reader.fieldnames or [])
            if missing:
                raise TrainingDataError(
                    f"{path}: no column {', '.join(sorted(missing))} (columns: {', '.join(reader.fieldnames or [])})"
                )
            rows = [
                (row[text_col].strip(), row[label_col].strip())
                for row in reader
                if (row.get(text_col) or "").strip() and (row.get(label_col) or "").strip()
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TrainingDataError(f"{path}: cannot be read as UTF-8 CSV ({exc})") from None
    if not rows:
        raise TrainingDataError(f"{path}: no rows with both a {text_col} and a {label_col}")
    return rows


@dataclass(frozen=True)
class Registered:
    run_id: str
    model_uri: str
    version: int
    champion: bool  # whether this version is now the champion
    promotion: str  # why it was or was not promoted


def register(
    *,
    tenant_id: str,
    kind: str,
    trained: Trained,
    registry: Registry,
    python_model: Any,
    artifact: str,
    pip_requirements: list[str],
    promote: bool = True,
) -> Registered:
    """Log a trained model as a new version of `<kind>__<tenant>` and, unless `promote` is False (the pipelines
    promote in a step of their own, after evaluation), move the champion alias if it is better."""
    logged = registry.log_run(
        kind=kind,
        tenant_id=tenant_id,
        params=trained.params,
        metrics=trained.metrics,
        python_model=python_model,
        artifacts={artifact: str(trained.folder)},
        pip_requirements=pip_requirements,
        data_fingerprint=fingerprint(trained.rows),
        documents={"confusion_matrix.json": trained.confusion},
    )
    if not promote:
        return Registered(logged.run_id, logged.model_uri, logged.version, False, "not considered yet")
    promotion = registry.promote_if_better(
        kind=kind, tenant_id=tenant_id, version=logged.version, metric=PROMOTION_METRIC[kind]
    )
    return Registered(logged.run_id, logged.model_uri, logged.version, promotion.promoted, promotion.reason)
