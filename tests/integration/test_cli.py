"""The `parley` command as an operator uses it, against the test PostgreSQL server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PARLEY = str(Path(sys.executable).with_name("parley"))


def parley(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PARLEY, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def cli_env(platform_db, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return {**env, "PARLEY_POSTGRES_URL": platform_db, "PARLEY_DATA_DIR": str(tmp_path)}


def test_create_tenant_then_keys_then_list(cli_env, client):
    created = parley("tenants", "create", "Cli Corp " + os.urandom(3).hex(), env=cli_env)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    assert tenant["api_key"].startswith("prl_")
    # The printed key works against the API at once.
    assert (
        client.get(f"/v1/tenants/{tenant['id']}", headers={"Authorization": f"Bearer {tenant['api_key']}"}).status_code
        == 200
    )

    minted = parley("keys", "create", "--tenant", tenant["id"], "--role", "analyst", "--name", "notebook", env=cli_env)
    assert minted.returncode == 0, minted.stderr
    key = json.loads(minted.stdout)
    assert (key["role"], key["tenant_id"], key["name"]) == ("analyst", tenant["id"], "notebook")

    listed = parley("tenants", "list", env=cli_env)
    assert tenant["id"] in {t["id"] for t in json.loads(listed.stdout)}
    assert tenant["api_key"] not in listed.stdout

    trail = client.get(
        f"/v1/tenants/{tenant['id']}/audit", headers={"Authorization": f"Bearer {tenant['api_key']}"}
    ).json()
    assert [(e["action"], e["target"]) for e in reversed(trail)] == [
        ("tenant.create", tenant["id"]),
        ("key.create", tenant["api_key_id"]),
        ("key.create", key["id"]),
    ]
    assert all(entry["actor"].startswith("cli") for entry in trail)


def test_bad_arguments_fail_clearly(cli_env):
    bad_role = parley("keys", "create", "--tenant", "t_x", "--role", "superuser", env=cli_env)
    assert bad_role.returncode != 0 and "superuser" in bad_role.stderr
    no_tenant = parley("keys", "create", "--tenant", "t_0000000000000000", "--role", "viewer", env=cli_env)
    assert no_tenant.returncode == 1 and "no tenant" in no_tenant.stderr
    assert "Traceback" not in bad_role.stderr + no_tenant.stderr


def test_duplicate_tenant_name_is_refused(cli_env):
    name = "Twice " + os.urandom(3).hex()
    assert parley("tenants", "create", name, env=cli_env).returncode == 0
    again = parley("tenants", "create", name, env=cli_env)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_migrate_on_a_current_schema_applies_nothing(cli_env):
    result = parley("migrate", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"applied": []}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PARLEY_PORT", "eighty"), ("PARLEY_POSTGRES_URL", "mysql://db/x"), ("PARLEY_ADMIN_TOKEN", "short")],
)
def test_a_bad_setting_stops_start_up_with_one_clear_line(cli_env, variable, value):
    result = parley("serve", env={**cli_env, variable: value}, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"parley: invalid setting {variable}: ")
    assert "Traceback" not in result.stderr


def test_a_bad_providers_file_stops_start_up_naming_the_problem(cli_env, tmp_path):
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  openai:\n    protocol: openai\n    base_url: https://api.openai.com/v1\n")
    result = parley("serve", env={**cli_env, "PARLEY_PROVIDERS_FILE": str(providers)}, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = f"parley: providers file {providers}: providers.openai.models: Field required"
    assert result.stderr.strip().splitlines() == [expected]
