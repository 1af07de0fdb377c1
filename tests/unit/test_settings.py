from pathlib import Path

import pytest

from core.settings import SettingsError, load_settings


def test_defaults_put_every_embedded_store_under_the_data_dir(tmp_path):
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    assert settings.uses_embedded_postgres
    assert settings.postgres_data_dir == tmp_path.resolve() / "postgres"
    assert settings.lake_location == str(tmp_path.resolve() / "lake")
    assert settings.mlflow_location == f"sqlite:///{tmp_path.resolve() / 'mlflow' / 'mlflow.db'}"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_two_data_dirs_share_no_location(tmp_path):
    one = load_settings(_env_file=None, data_dir=tmp_path / "one")
    two = load_settings(_env_file=None, data_dir=tmp_path / "two")
    for attribute in ("postgres_data_dir", "lake_location", "mlflow_location"):
        assert getattr(one, attribute) != getattr(two, attribute)


def test_values_come_from_prefixed_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PARLEY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PARLEY_PORT", "9123")
    monkeypatch.setenv("PARLEY_POSTGRES_URL", "postgresql://u@db.internal:5432/parley")
    monkeypatch.setenv("PARLEY_LAKE_URI", "s3://bucket/lake")
    settings = load_settings(_env_file=None)
    assert settings.data_dir == Path(tmp_path)
    assert settings.port == 9123
    assert not settings.uses_embedded_postgres
    assert settings.lake_location == "s3://bucket/lake"


def test_secrets_do_not_show_in_repr():
    settings = load_settings(_env_file=None, admin_token="s" * 30, qdrant_api_key="q" * 20)
    assert "s" * 30 not in repr(settings)
    assert "q" * 20 not in repr(settings)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("port", "70000", "PARLEY_PORT"),
        ("port", "http", "PARLEY_PORT"),
        ("postgres_url", "mysql://x/y", "PARLEY_POSTGRES_URL"),
        ("qdrant_url", "localhost:6333", "PARLEY_QDRANT_URL"),
        ("lake_uri", "ftp://host/lake", "PARLEY_LAKE_URI"),
        ("admin_token", "short", "PARLEY_ADMIN_TOKEN"),
        ("log_level", "loud", "PARLEY_LOG_LEVEL"),
        ("max_request_bytes", "10", "PARLEY_MAX_REQUEST_BYTES"),
        ("workers", "0", "PARLEY_WORKERS"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(monkeypatch, field, value, named):
    monkeypatch.setenv(f"PARLEY_{field.upper()}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert message.startswith(f"invalid setting {named}: ")
    assert "\n" not in message


def test_a_bad_secret_is_not_echoed(monkeypatch):
    monkeypatch.setenv("PARLEY_ADMIN_TOKEN", "hunter2-secret")
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    assert "hunter2-secret" not in str(caught.value)


def test_several_bad_values_each_get_their_own_line(monkeypatch):
    monkeypatch.setenv("PARLEY_PORT", "0")
    monkeypatch.setenv("PARLEY_ADMIN_TOKEN", "tiny")
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert {line.split(":")[0] for line in lines} == {
        "invalid setting PARLEY_PORT",
        "invalid setting PARLEY_ADMIN_TOKEN",
    }


def test_pool_max_below_min_is_refused():
    with pytest.raises(SettingsError, match="PARLEY_DB_POOL_MAX"):
        load_settings(_env_file=None, db_pool_min=5, db_pool_max=2)
