"""The one Settings object. Read from the environment (prefix PARLEY_) or a .env file, validated once at start-up.

Environments differ only in these values: empty URLs mean "run the embedded default under the data directory".
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PARLEY_"


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting, one line per problem."""


def _check_scheme(value: str, allowed: tuple[str, ...]) -> str:
    if value and urlsplit(value).scheme not in allowed:
        raise ValueError(
            f"must start with one of {', '.join(s + '://' for s in allowed)} (or be empty for the embedded default)"
        )
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True)

    data_dir: Path = Path("./var")
    postgres_url: str = ""
    qdrant_url: str = ""
    qdrant_api_key: SecretStr | None = None
    lake_uri: str = ""
    mlflow_uri: str = ""
    admin_token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    max_request_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    max_upload_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    max_message_chars: Annotated[int, Field(ge=1, le=100_000)] = 4000
    rate_limit_per_minute: Annotated[int, Field(ge=1)] = 600
    # Unset: the calibrated default of the knowledge-base answerer (core/llm/kb.py).
    answer_min_score: Annotated[float, Field(ge=-1.0, le=1.0)] | None = None
    demo_data_dir: Path = Path("../shared/data")
    # LLM providers, their models and prices (core/llm/catalog.py); unset: only the built-in free tiers.
    providers_file: Path | None = None
    # The `local` tier's GGUF model (needs the `local` extra); unset: the extra's SmolLM2 file when it is installed.
    local_model: Path | None = None
    # Cosine similarity for a semantic-cache hit; unset: the calibrated default (core/llm/cache.py).
    cache_threshold: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    # Built models (the ONNX encoder); unset: under data_dir. Share one folder between data directories to build once.
    models_dir: Path | None = None
    # How often a serving process looks up each tenant's champion models in the registry (a new champion is in use
    # within this long, without a restart).
    champion_refresh_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    db_pool_min: Annotated[int, Field(ge=1)] = 1
    db_pool_max: Annotated[int, Field(ge=1)] = 10
    auto_migrate: bool = True
    # Pipelines (`parley serve --pipelines`): the Dagster webserver's port, and where Dagster keeps its runs and
    # events; empty means a `dagster` database on the platform's own PostgreSQL server.
    dagster_port: Annotated[int, Field(ge=1, le=65535)] = 3000
    dagster_postgres_url: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("postgres_url", "dagster_postgres_url")
    @classmethod
    def _postgres_scheme(cls, value: str) -> str:
        return _check_scheme(value, ("postgresql", "postgres"))

    @field_validator("qdrant_url")
    @classmethod
    def _qdrant_scheme(cls, value: str) -> str:
        return _check_scheme(value, ("http", "https"))

    @field_validator("lake_uri")
    @classmethod
    def _lake_scheme(cls, value: str) -> str:
        # A bare path is a local folder; anything with a scheme must be one Delta Lake can write to.
        if value and "://" in value:
            return _check_scheme(value, ("file", "s3", "s3a", "gs", "az", "abfss"))
        return value

    @field_validator("admin_token")
    @classmethod
    def _admin_token_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 24:
            raise ValueError("must be at least 24 characters (generate one with: openssl rand -hex 32)")
        return value

    @field_validator("workers")
    @classmethod
    def _one_process_per_embedded_engine(cls, value: int, info) -> int:
        if value > 1 and not info.data.get("qdrant_url"):
            raise ValueError("above 1 needs PARLEY_QDRANT_URL: the embedded vector engine opens in one process only")
        return value

    @field_validator("db_pool_max")
    @classmethod
    def _pool_bounds(cls, value: int, info) -> int:
        if value < info.data.get("db_pool_min", 1):
            raise ValueError("must be at least PARLEY_DB_POOL_MIN")
        return value

    # Derived locations: everything embedded lives under data_dir, so two data directories are two platforms.
    @property
    def postgres_data_dir(self) -> Path:
        return self.data_dir.resolve() / "postgres"

    @property
    def vectors_path(self) -> Path:
        return self.data_dir.resolve() / "vectors" / "chunks"

    @property
    def models_location(self) -> Path:
        return (self.models_dir or self.data_dir / "models").resolve()

    @property
    def lake_location(self) -> str:
        return self.lake_uri or str(self.data_dir.resolve() / "lake")

    @property
    def dagster_home(self) -> Path:
        return self.data_dir.resolve() / "dagster"

    @property
    def mlflow_location(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.data_dir.resolve() / 'mlflow' / 'mlflow.db'}"

    @property
    def uses_embedded_postgres(self) -> bool:
        return not self.postgres_url


def load_settings(**overrides) -> Settings:
    """Build Settings from the environment; raise SettingsError whose lines each name the bad PARLEY_ variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            field = str(error["loc"][0]) if error["loc"] else "settings"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"invalid setting {ENV_PREFIX}{field.upper()}: {message}")
        raise SettingsError("\n".join(lines)) from None
