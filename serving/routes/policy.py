"""A tenant's routing policy: read by owners, admins and analysts; changed by owners and admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from core.llm import policy as policies
from core.llm.intent_routes import list_routes
from core.llm.policy import TenantPolicy
from core.schemas import IntentRouteOut
from core.tenancy import Permission as P
from serving.deps import CatalogDep, DbDep, RequestIdDep, TenantScope, tenant_scope
from serving.problems import Problem, problem_responses

router = APIRouter(prefix="/v1/tenants", tags=["policy"], responses=problem_responses(401, 403, 404, 422))


@router.get("/{tenant_id}/policy", summary="The tenant's routing policy and budget (the default until one is set)")
async def read_policy(scope: Annotated[TenantScope, tenant_scope(P.POLICY_READ)], db: DbDep) -> TenantPolicy:
    async with db.connection() as conn:
        return await policies.get_policy(conn, tenant_id=scope.tenant_id)


@router.get(
    "/{tenant_id}/policy/intents",
    summary="Per-intent routes the pipelines learned for the tenant (they refine the policy, never override it)",
)
async def read_intent_routes(
    scope: Annotated[TenantScope, tenant_scope(P.POLICY_READ)], db: DbDep
) -> list[IntentRouteOut]:
    async with db.connection() as conn:
        policy = await policies.get_policy(conn, tenant_id=scope.tenant_id)
        rows = await list_routes(conn, tenant_id=scope.tenant_id)
    return [IntentRouteOut(**row, in_policy=row["tier"] in policy.tiers) for row in rows]


@router.put("/{tenant_id}/policy", summary="Replace the tenant's routing policy and budget")
async def replace_policy(
    body: TenantPolicy,
    scope: Annotated[TenantScope, tenant_scope(P.POLICY_WRITE)],
    db: DbDep,
    catalog: CatalogDep,
    rid: RequestIdDep,
) -> TenantPolicy:
    if unknown := body.unknown_models(catalog):
        declared = sorted(f"{p}/{m}" for p, spec in catalog.providers.items() for m in spec.models) or ["none"]
        raise Problem(
            422,
            f"Not in providers.yaml: {', '.join(unknown)}. Declared models: {', '.join(declared)}.",
            kind="validation-error",
            errors=[
                {"location": "body", "field": "tiers", "message": f"unknown model {name}", "type": "unknown_model"}
                for name in unknown
            ],
        )
    async with db.transaction() as conn:
        return await policies.put_policy(
            conn, tenant_id=scope.tenant_id, policy=body, actor=scope.caller.actor, request_id=rid
        )
