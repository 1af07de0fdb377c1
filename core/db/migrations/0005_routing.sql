-- What routing needs per turn, kept cheap to read: which model wrote each answer, the month's spend as a running total
-- (a budget check must not sum a month of usage rows on every turn), and the semantic answer cache.

ALTER TABLE messages ADD COLUMN model text;  -- provider/model of an assistant answer; NULL for the free tiers

CREATE INDEX usage_conversation ON usage (tenant_id, conversation_id) WHERE conversation_id IS NOT NULL;

-- Updated with every paid usage row, in the same statement (core/metrics.py).
CREATE TABLE usage_monthly (
    tenant_id  text NOT NULL,
    month      date NOT NULL,
    cost_usd   numeric(16, 8) NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, month)
);

-- The cache's truth; each serving process keeps a mirror of the embeddings it searches (core/llm/cache.py).
-- kb_version counts knowledge-base changes; epoch counts removals of entries (KB change, thumbs-down, trimming), so a
-- process whose mirror has an older epoch reloads it, and one that has only missed newer entries fetches those.
CREATE TABLE answer_cache_state (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    kb_version  bigint NOT NULL DEFAULT 0,
    epoch       bigint NOT NULL DEFAULT 0
);

CREATE TABLE answer_cache (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kb_version   bigint NOT NULL,
    policy_hash  text NOT NULL,
    question     text NOT NULL,
    embedding    bytea NOT NULL,  -- float32, L2-normalised
    answer       text NOT NULL,
    sources      jsonb NOT NULL,
    tier         text NOT NULL,
    model        text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX answer_cache_tenant ON answer_cache (tenant_id, id);
