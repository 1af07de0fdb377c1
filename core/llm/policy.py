"""A tenant's routing policy: the tiers that may answer and their order, the strategy that picks among them, and the
budget that steers it. Stored per tenant (`tenant_policies`); a tenant without a row gets DEFAULT_POLICY, which uses
only the free tiers, so nobody pays for a model they did not choose.

A tier is `cache` (the semantic cache), `kb` (the knowledge-base answerer), `local` (a local model), or
`<provider>/<model>` from providers.yaml.
"""

from __future__ import annotations

from typing import Annotated, Literal

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.llm.catalog import Catalog
from core.tenancy import record_audit

FREE_TIERS = ("cache", "kb", "local")
Strategy = Literal["cost", "quality", "latency"]


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    monthly_usd: Annotated[float, Field(gt=0)]
    # Past the soft limit only the cheaper tiers answer; past the hard limit no paid tier does. Unset: the budget.
    soft_limit_usd: Annotated[float, Field(gt=0)] | None = None
    hard_limit_usd: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _limits_in_order(self) -> Budget:
        soft = self.soft_limit_usd or self.monthly_usd
        hard = self.hard_limit_usd or self.monthly_usd
        if soft > hard:
            raise ValueError("soft_limit_usd must not exceed hard_limit_usd (or monthly_usd when that is unset)")
        return self


class TenantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: Annotated[list[str], Field(min_length=1, max_length=20)] = ["cache", "kb"]
    strategy: Strategy = "cost"
    # The `cost` strategy takes the cheapest tier whose expected quality (0..1) reaches this bar.
    quality_bar: Annotated[float, Field(ge=0, le=1)] = 0.7
    # The routing-policy pipeline routes an intent to a cheaper tier only if that tier's measured answer quality is
    # at most this far below the best tier's for the intent (pipelines/defs/routing, models/routing/policy.py).
    route_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.05
    # Models a caller may ask for by name (the OpenAI-compatible endpoint); empty: those in `tiers`.
    allowed_models: Annotated[list[str], Field(max_length=50)] = []
    budget: Budget | None = None
    max_cost_per_conversation_usd: Annotated[float, Field(gt=0)] | None = None
    # Let the paid tiers also summarise finished conversations for the lakehouse (within the same budget); off:
    # summaries are extractive and free.
    llm_summaries: bool = False

    @field_validator("tiers")
    @classmethod
    def _tiers_once_each(cls, tiers: list[str]) -> list[str]:
        for tier in tiers:
            if tier not in FREE_TIERS and tier.count("/") != 1:
                raise ValueError(f"'{tier}' is neither one of {', '.join(FREE_TIERS)} nor provider/model")
        if len(set(tiers)) != len(tiers):
            raise ValueError("each tier may appear once")
        return tiers

    @field_validator("allowed_models")
    @classmethod
    def _models_are_provider_slash_model(cls, models: list[str]) -> list[str]:
        for model in models:
            if model.count("/") != 1:
                raise ValueError(f"'{model}' is not provider/model")
        return models

    @property
    def paid_tiers(self) -> list[str]:
        return [tier for tier in self.tiers if tier not in FREE_TIERS]

    def unknown_models(self, catalog: Catalog) -> list[str]:
        """Tiers and allowed models naming a provider/model that providers.yaml does not declare."""
        named = self.paid_tiers + [m for m in self.allowed_models if m not in self.tiers]
        return [name for name in named if catalog.model(*name.split("/", 1)) is None]


DEFAULT_POLICY = TenantPolicy()


async def get_policy(conn: AsyncConnection, *, tenant_id: str) -> TenantPolicy:
    cursor = await conn.execute("SELECT policy FROM tenant_policies WHERE tenant_id = %s", (tenant_id,))
    row = await cursor.fetchone()
    return TenantPolicy.model_validate(row["policy"]) if row else DEFAULT_POLICY


async def put_policy(
    conn: AsyncConnection, *, tenant_id: str, policy: TenantPolicy, actor: str, request_id: str | None = None
) -> TenantPolicy:
    """Replace the tenant's policy; the audit row (with the new policy) is written on the same connection."""
    stored = Jsonb(policy.model_dump(mode="json"))
    await conn.execute(
        """INSERT INTO tenant_policies (tenant_id, policy, updated_by) VALUES (%s, %s, %s)
           ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy, updated_by = excluded.updated_by,
                                                 updated_at = now()""",
        (tenant_id, stored, actor),
    )
    await record_audit(
        conn,
        tenant_id=tenant_id,
        actor=actor,
        action="policy.update",
        details=policy.model_dump(mode="json"),
        request_id=request_id,
    )
    return policy
