"""Request, response and event contracts shared by the HTTP tiers and the CLI ("models" means ML only)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    AGENT = "agent"
    ANALYST = "analyst"
    VIEWER = "viewer"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Request(BaseModel):
    # An unknown field is a typo the caller wants to hear about, not something to drop silently.
    model_config = ConfigDict(extra="forbid")


class TenantCreate(Request):
    name: Name
    settings: dict[str, Any] = Field(default_factory=dict)


class TenantUpdate(Request):
    name: Name | None = None
    status: TenantStatus | None = None
    settings: dict[str, Any] | None = None


class Tenant(BaseModel):
    id: str
    name: str
    status: TenantStatus
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TenantCreated(Tenant):
    api_key: str = Field(description="The owner key. Shown once: only its hash is stored.")
    api_key_id: str


class ApiKeyCreate(Request):
    role: Role
    name: Name = "default"


class ApiKey(BaseModel):
    id: str
    tenant_id: str
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    id: str
    key: str = Field(description="Shown once: only its hash is stored.")
    role: Role
    name: str
    tenant_id: str


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    tenant_id: str | None
    target: str | None
    details: dict[str, Any]
    request_id: str | None
