from pathlib import Path

import pytest

from core.llm.catalog import CatalogError, load_catalog

GOOD = """
providers:
  openai:
    protocol: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    models:
      gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.60, context_tokens: 128000}
  ollama:
    protocol: openai
    base_url: http://127.0.0.1:8080/v1
    timeout_s: 5
    models:
      smollm2: {input_per_mtok: 0, output_per_mtok: 0, context_tokens: 8192}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    return path


def test_a_good_file_gives_providers_models_and_prices(tmp_path):
    catalog = load_catalog(write(tmp_path, GOOD), environ={"OPENAI_API_KEY": "sk-x"})
    assert set(catalog.providers) == {"openai", "ollama"}
    assert catalog.providers["ollama"].api_key_env is None and catalog.providers["ollama"].timeout_s == 5
    mini = catalog.model("openai", "gpt-4o-mini")
    assert mini.cost(input_tokens=1_000_000, output_tokens=500_000) == pytest.approx(0.45)
    assert catalog.model("openai", "gpt-5") is None and load_catalog(None).providers == {}


def test_a_missing_key_names_its_variable(tmp_path):
    with pytest.raises(CatalogError) as failed:
        load_catalog(write(tmp_path, GOOD), environ={})
    assert str(failed.value).endswith("providers.openai.api_key_env: OPENAI_API_KEY is not set in the environment")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("api_key_env: OPENAI_API_KEY", "api_key: sk-live-123"), "API keys do not belong in this file"),
        (GOOD.replace("protocol: openai", "protocol: cohere", 1), "providers.openai.protocol"),
        (GOOD.replace("input_per_mtok: 0.15", "input_per_mtok: -1"), "models.gpt-4o-mini.input_per_mtok"),
        (GOOD.replace("https://api.openai.com/v1", "not a url"), "providers.openai.base_url"),
        ("providers:\n  kb:\n    protocol: openai\n", "'kb' is a built-in tier"),
        ("providers: [unclosed", "not valid YAML at line 1"),
    ],
)
def test_a_bad_file_says_where(tmp_path, text, expected):
    with pytest.raises(CatalogError) as failed:
        load_catalog(write(tmp_path, text), environ={"OPENAI_API_KEY": "sk-x"})
    assert expected in str(failed.value)
    assert "sk-live-123" not in str(failed.value)
