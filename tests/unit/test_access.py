import re
from pathlib import Path

import pytest

from core.schemas import Role
from core.tenancy import ROLE_PERMISSIONS, Permission, Principal, _split_key, can_manage_role

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"


def documented_table() -> dict[Role, set[str]]:
    rows = [line for line in DOC.read_text().splitlines() if re.match(r"^\| `[a-z:]+`", line)]
    roles = [Role.OWNER, Role.ADMIN, Role.AGENT, Role.ANALYST, Role.VIEWER]
    table: dict[Role, set[str]] = {role: set() for role in roles}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        permission = cells[0].strip("`")
        for role, cell in zip(roles, cells[1:6], strict=True):
            if cell == "✓":
                table[role].add(permission)
    return table


def test_documented_permission_table_matches_the_code():
    in_code = {role: {p.value for p in permissions} for role, permissions in ROLE_PERMISSIONS.items()}
    assert documented_table() == in_code
    assert {p.value for p in Permission} == set().union(*in_code.values())


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (Role.OWNER, Role.OWNER, True),
        (Role.OWNER, Role.VIEWER, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.AGENT, True),
        (Role.AGENT, Role.VIEWER, False),
        (Role.ANALYST, Role.VIEWER, False),
        (Role.VIEWER, Role.VIEWER, False),
    ],
)
def test_key_management_never_escalates(actor, target, allowed):
    assert can_manage_role(actor, target) is allowed


def test_a_tenant_key_has_no_power_over_another_tenant():
    owner_of_a = Principal(actor="key:k_1", tenant_id="t_a", role=Role.OWNER)
    assert owner_of_a.may(Permission.KEYS_WRITE, tenant_id="t_a")
    assert not owner_of_a.may(Permission.TENANT_READ, tenant_id="t_b")


@pytest.mark.parametrize(
    "presented",
    ["", "prl_", "prl_abc", "sk-" + "x" * 54, "prl_0123456789ab-" + "x" * 40, "prl_0123456789ab_" + "x" * 39],
)
def test_malformed_keys_have_no_lookup_prefix(presented):
    assert _split_key(presented) is None
