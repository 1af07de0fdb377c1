"""The model registry (MLflow): per-tenant models by kind, every training run tracked, a champion alias per model.

A model is registered as `<kind>__<tenant_id>` (intent__t_1f0c…), so a tenant's models are found by name and no
lookup by one tenant can reach another's. Each run logs its parameters, metrics, the confusion matrix, the training
data's fingerprint and a pyfunc model with explicit pip requirements (inferring them costs seconds and guesses). The
`champion` alias moves only when a challenger's held-out metric beats the champion's by the margin; serving loads
`models:/<name>@champion`.

The tracking store is a SQLite file under the data directory unless Settings name a tracking server. MLflow is
imported here and only here, when a registry is first used (it takes about 2.5 s).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHAMPION = "champion"
KINDS = ("intent", "sentiment")  # the kinds of per-tenant model the platform trains
DEFAULT_MARGIN = 0.005  # a challenger must beat the champion's held-out metric by half a point


def model_name(*, kind: str, tenant_id: str) -> str:
    if "__" in kind or not kind.isidentifier():
        raise ValueError(f"model kind {kind!r} must be a plain identifier without '__'")
    return f"{kind}__{tenant_id}"


def fingerprint(rows: Iterable[tuple[str, str]]) -> str:
    """A stable digest of (text, label) training rows, whatever their order: what the model was trained on."""
    digest = hashlib.sha256()
    for text, label in sorted(rows):
        digest.update(text.encode())
        digest.update(b"\x1f")
        digest.update(label.encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


@dataclass(frozen=True)
class Logged:
    run_id: str
    model_uri: str  # models:/<name>/<version>
    version: int


@dataclass(frozen=True)
class Version:
    version: int
    run_id: str
    metrics: dict[str, float]
    champion: bool
    created_at_ms: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str
    champion: int | None  # the champion version after the decision


class Registry:
    """One MLflow tracking store and registry; safe to share between threads (MLflow's client is not, hence the
    lock around the calls that set the tracking URI globally)."""

    _lock = threading.Lock()

    def __init__(self, uri: str) -> None:
        self.uri = uri
        # A local store keeps its artifacts beside its database; MLflow's default would be ./mlruns under whatever
        # directory the process happened to start in. A server keeps its own artifact root.
        self.artifact_root: str | None = None
        if uri.startswith("sqlite:///"):
            store = Path(uri.removeprefix("sqlite:///")).parent
            store.mkdir(parents=True, exist_ok=True)
            self.artifact_root = (store / "artifacts").resolve().as_uri()
        self._client = None

    def exists(self) -> bool:
        """False for a local store nobody has written to yet: callers can skip importing MLflow (2.5 s) to learn
        that it holds nothing."""
        return not self.uri.startswith("sqlite:///") or Path(self.uri.removeprefix("sqlite:///")).exists()

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def log_run(
        self,
        *,
        kind: str,
        tenant_id: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        python_model: Any,
        artifacts: Mapping[str, str],
        pip_requirements: list[str],
        data_fingerprint: str,
        documents: Mapping[str, Any] | None = None,
    ) -> Logged:
        """Track a training run and register its model as a new version (not yet champion)."""
        import mlflow

        name = model_name(kind=kind, tenant_id=tenant_id)
        with self._lock:
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                artifact_location = f"{self.artifact_root}/{name}" if self.artifact_root else None
                self.client.create_experiment(name, artifact_location=artifact_location)
            mlflow.set_experiment(name)
            with mlflow.start_run(tags={"tenant_id": tenant_id, "kind": kind}) as run:
                mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
                mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
                mlflow.set_tag("data_fingerprint", data_fingerprint)
                for document, content in (documents or {}).items():
                    mlflow.log_dict(content, document)
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=python_model,
                    artifacts=dict(artifacts),
                    pip_requirements=pip_requirements,
                    registered_model_name=name,
                )
        version = int(info.registered_model_version)
        for key, value in {"tenant_id": tenant_id, "data_fingerprint": data_fingerprint}.items():
            self.client.set_model_version_tag(name, str(version), key, value)
        return Logged(run_id=run.info.run_id, model_uri=f"models:/{name}/{version}", version=version)

    def champion(self, *, kind: str, tenant_id: str) -> Version | None:
        from mlflow.exceptions import MlflowException

        name = model_name(kind=kind, tenant_id=tenant_id)
        try:
            found = self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return None
        return self._version(found, champion=True)

    def versions(self, *, kind: str, tenant_id: str) -> list[Version]:
        from mlflow.exceptions import MlflowException

        name = model_name(kind=kind, tenant_id=tenant_id)
        try:
            found = self.client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            return []
        current = self.champion(kind=kind, tenant_id=tenant_id)
        return sorted(
            (self._version(v, champion=current is not None and int(v.version) == current.version) for v in found),
            key=lambda v: v.version,
        )

    def tenant_models(self, *, tenant_id: str, kinds: Iterable[str] = KINDS) -> list[dict[str, Any]]:
        """Every registered version of the tenant's models, oldest first per kind, as the API lists them."""
        if not self.exists():
            return []
        return [
            {
                "kind": kind,
                "name": model_name(kind=kind, tenant_id=tenant_id),
                "version": version.version,
                "uri": f"models:/{model_name(kind=kind, tenant_id=tenant_id)}/{version.version}",
                "champion": version.champion,
                "metrics": version.metrics,
                "run_id": version.run_id,
                "created_at_ms": version.created_at_ms,
                "data_fingerprint": version.tags.get("data_fingerprint"),
            }
            for kind in kinds
            for version in self.versions(kind=kind, tenant_id=tenant_id)
        ]

    def _version(self, model_version, *, champion: bool) -> Version:
        run = self.client.get_run(model_version.run_id)
        return Version(
            version=int(model_version.version),
            run_id=model_version.run_id,
            metrics=dict(run.data.metrics),
            champion=champion,
            created_at_ms=int(model_version.creation_timestamp),
            tags=dict(model_version.tags or {}),
        )

    def promote_if_better(
        self, *, kind: str, tenant_id: str, version: int, metric: str, margin: float = DEFAULT_MARGIN
    ) -> Promotion:
        """Move the champion alias to `version` when there is no champion, or when its held-out `metric` beats the
        champion's by more than `margin`."""
        challenger = next((v for v in self.versions(kind=kind, tenant_id=tenant_id) if v.version == version), None)
        if challenger is None or metric not in challenger.metrics:
            return Promotion(False, f"version {version} has no {metric}", self._champion_version(kind, tenant_id))
        current = self.champion(kind=kind, tenant_id=tenant_id)
        score = challenger.metrics[metric]
        if current is not None:
            best = current.metrics.get(metric, float("-inf"))
            if score <= best + margin:
                return Promotion(
                    False,
                    f"{metric} {score:.4f} does not beat the champion's {best:.4f} by {margin}",
                    current.version,
                )
        self.set_champion(kind=kind, tenant_id=tenant_id, version=version)
        was = f"the champion's {current.metrics.get(metric, float('nan')):.4f}" if current else "no champion"
        return Promotion(True, f"{metric} {score:.4f} against {was}", version)

    def set_champion(self, *, kind: str, tenant_id: str, version: int) -> None:
        """Point the champion alias at `version` unconditionally (an operator's rollback; promotion goes through
        promote_if_better)."""
        self.client.set_registered_model_alias(model_name(kind=kind, tenant_id=tenant_id), CHAMPION, str(version))

    def _champion_version(self, kind: str, tenant_id: str) -> int | None:
        current = self.champion(kind=kind, tenant_id=tenant_id)
        return current.version if current else None

    def download(self, *, kind: str, tenant_id: str, version: int, into: Path) -> Path:
        """The files of a version's model (its pyfunc folder) under `into`."""
        import mlflow

        name = model_name(kind=kind, tenant_id=tenant_id)
        into.mkdir(parents=True, exist_ok=True)
        with self._lock:
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            return Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(into)))
