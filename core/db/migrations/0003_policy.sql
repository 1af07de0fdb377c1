-- Each tenant's routing policy: which tiers may answer, in what order, by which strategy, within which budget.
-- No row: the default policy (core/llm/policy.py), which uses only the free tiers.

CREATE TABLE tenant_policies (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    policy      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);
