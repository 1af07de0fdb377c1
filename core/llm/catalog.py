"""providers.yaml: which LLM providers exist, their models, prices, context sizes and timeouts.

API keys never live in the file: each provider names the environment variable that holds its key (`api_key_env`), and
start-up fails, naming the variable, when it is not set. The file is validated once at start-up; a bad one stops
`parley serve` with one line per problem, each naming its place in the file.

    providers:
      openai:
        protocol: openai              # openai (OpenAI, Azure, vLLM, Ollama, llama.cpp, Groq) | anthropic
        base_url: https://api.openai.com/v1
        api_key_env: OPENAI_API_KEY
        timeout_s: 30
        models:
          gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.60, context_tokens: 128000, quality: 0.8}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator, model_validator

from core.llm.base import Provider

ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class CatalogError(ValueError):
    """A bad providers.yaml: one line per problem, each naming where in the file."""


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: Annotated[float, Field(ge=0)]  # USD per million input tokens
    output_per_mtok: Annotated[float, Field(ge=0)]
    context_tokens: Annotated[int, Field(ge=256)]
    # The operator's prior for answer quality (0..1), which the `cost` strategy weighs against the tenant's bar until
    # the pipelines measure it per tenant and intent.
    quality: Annotated[float, Field(ge=0, le=1)] = 0.5

    @property
    def blended_per_mtok(self) -> float:
        """One price to compare models by: a chat turn reads about three tokens for each it writes."""
        return (3 * self.input_per_mtok + self.output_per_mtok) / 4

    def cost(self, *, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


class ProviderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["openai", "anthropic"]
    base_url: HttpUrl
    api_key_env: Annotated[str, Field(pattern=ENV_NAME)] | None = None  # None: a local server that needs no key
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    models: Annotated[dict[str, ModelSpec], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _no_keys_in_the_file(cls, data):
        if isinstance(data, Mapping) and "api_key" in data:
            raise ValueError(
                "API keys do not belong in this file: put the key in an environment variable and name it in api_key_env"
            )
        return data


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")], ProviderSpec] = {}

    @field_validator("providers", mode="before")
    @classmethod
    def _no_reserved_names(cls, providers):
        for reserved in ("kb", "local", "cache"):
            if isinstance(providers, Mapping) and reserved in providers:
                raise ValueError(f"'{reserved}' is a built-in tier; name the provider otherwise")
        return providers

    def model(self, provider: str, model: str) -> ModelSpec | None:
        spec = self.providers.get(provider)
        return spec.models.get(model) if spec else None


def load_catalog(path: Path | None, *, environ: Mapping[str, str] | None = None) -> Catalog:
    """The catalog in `path` (no path: no external providers), checked against the environment for its keys."""
    if path is None:
        return Catalog()
    environ = os.environ if environ is None else environ
    where = f"providers file {path}"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{where}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise CatalogError(f"{where}: not valid YAML{at}") from None
    try:
        catalog = Catalog.model_validate(raw or {})
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            place = ".".join(str(part) for part in error["loc"]) or "top level"
            lines.append(f"{where}: {place}: {error['msg'].removeprefix('Value error, ')}")
        raise CatalogError("\n".join(lines)) from None
    missing = [
        f"{where}: providers.{name}.api_key_env: {spec.api_key_env} is not set in the environment"
        for name, spec in catalog.providers.items()
        if spec.api_key_env and not environ.get(spec.api_key_env)
    ]
    if missing:
        raise CatalogError("\n".join(missing))
    return catalog


def build_providers(catalog: Catalog, *, environ: Mapping[str, str] | None = None) -> dict[str, Provider]:
    """One client per declared provider; the caller closes them (`aclose`)."""
    from core.llm.anthropic import AnthropicProvider
    from core.llm.openai import OpenAIProvider

    environ = os.environ if environ is None else environ
    kinds = {"openai": OpenAIProvider, "anthropic": AnthropicProvider}
    return {
        name: kinds[spec.protocol](
            name=name,
            base_url=str(spec.base_url),
            api_key=environ.get(spec.api_key_env) if spec.api_key_env else None,
        )
        for name, spec in catalog.providers.items()
    }
