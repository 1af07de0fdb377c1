"""Thin Dagster adapters over core/: the lake, the platform's PostgreSQL, and the Settings they come from.

Nothing here reads the environment at import: each resource reads Parley's Settings when a run sets it up, so the
pipelines use the same PARLEY_* configuration as the serving tier (and an explicit value, as the tests give, wins).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg
from pydantic import PrivateAttr

from core.db import EmbeddedPostgres
from core.lake import Lake
from core.llm.catalog import Catalog
from core.settings import Settings, load_settings


def _settings() -> Settings:
    return load_settings()


class LakeResource(dg.ConfigurableResource):
    """The Delta lake; `root` empty means PARLEY_LAKE_URI (or the data directory's lake folder)."""

    root: str = ""

    def lake(self) -> Lake:
        return Lake(self.root or _settings().lake_location)


class PostgresResource(dg.ConfigurableResource):
    """The platform database. `url` empty means PARLEY_POSTGRES_URL, or the embedded server under the data
    directory, joined for the run's duration (it stays up while anyone else uses it)."""

    url: str = ""
    _embedded: EmbeddedPostgres | None = PrivateAttr(default=None)
    _url: str = PrivateAttr(default="")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.url:
            self._url = self.url
            return
        settings = _settings()
        if settings.postgres_url:
            self._url = settings.postgres_url
        else:
            self._embedded = EmbeddedPostgres(settings.postgres_data_dir)
            self._url = self._embedded.start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    @property
    def dsn(self) -> str:
        return self._url or self.url

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            yield conn


class LlmResource(dg.ConfigurableResource):
    """The LLM providers of providers.yaml, for assets that may call a model (summaries); `providers_file` empty
    means PARLEY_PROVIDERS_FILE. No file: no model is called, and those assets use their free methods."""

    providers_file: str = ""
    enabled: bool = True
    max_summaries_per_run: int = 200

    def catalog(self) -> Catalog:
        from core.llm.catalog import load_catalog

        if not self.enabled:
            return Catalog()
        return load_catalog(Path(self.providers_file) if self.providers_file else _settings().providers_file)


class ModelsResource(dg.ConfigurableResource):
    """The model registry (MLflow: the tenants' models the enrichments use and the training assets write) and the
    built base encoder the tenants' models start from. `mlflow_uri` empty
    means PARLEY_MLFLOW_URI (or the data directory's store); `models_dir` empty means PARLEY_MODELS_DIR (or the data
    directory's models folder)."""

    mlflow_uri: str = ""
    models_dir: str = ""
    # How intent models are trained (models/intent/train.py): "auto" fine-tunes the encoder where it pays; "frozen"
    # fits only the head, in seconds.
    intent_recipe: str = "auto"

    def registry(self):
        from core.registry import Registry

        return Registry(self.mlflow_uri or _settings().mlflow_location)

    def base_encoder_dir(self) -> Path:
        from core.embeddings import ensure_model

        return ensure_model(Path(self.models_dir) if self.models_dir else _settings().models_location)
