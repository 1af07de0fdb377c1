-- Per-intent refinements of a tenant's routing policy: for an intent, the cheapest tier whose measured answer quality
-- holds. Written by the routing-policy pipeline asset, read by the router through a short per-process cache
-- (core/llm/intent_routes.py). A tier the tenant's policy does not list is ignored: the policy has the last word.
CREATE TABLE routing_policy (
    tenant_id      text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    intent         text NOT NULL,
    tier           text NOT NULL,  -- kb, local, or provider/model
    -- Share of conversations routed by the plain policy instead, so the other tiers keep being measured.
    explore_share  real NOT NULL DEFAULT 0.1 CHECK (explore_share >= 0 AND explore_share <= 1),
    samples        integer NOT NULL CHECK (samples >= 0),
    quality        real CHECK (quality >= 0 AND quality <= 1),  -- the measured quality of `tier` for this intent
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, intent)
);

-- What routed each answer, so the pipelines can tell the learned routes' outcomes from the exploration's.
ALTER TABLE usage ADD COLUMN intent text;
ALTER TABLE usage ADD COLUMN routed_by text NOT NULL DEFAULT 'policy' CHECK (routed_by IN ('policy', 'intent', 'explore'));
