-- Knowledge base, conversations, feedback, public widget keys, and the outbox the pipelines drain.

CREATE TABLE kb_documents (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    title         text NOT NULL,
    text          text NOT NULL,
    media_type    text NOT NULL,
    filename      text,
    source_url    text,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- SHA-256 of title and text: re-uploading the same content finds this row instead of adding another.
    content_hash  text NOT NULL,
    chunk_count   integer NOT NULL CHECK (chunk_count > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, content_hash)
);
CREATE INDEX kb_documents_tenant_idx ON kb_documents (tenant_id, created_at DESC);

-- The source of truth for what the vector index holds: the index can be rebuilt from these rows.
CREATE TABLE kb_chunks (
    id           uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    document_id  text NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    ordinal      integer NOT NULL,
    heading      text,
    text         text NOT NULL,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX kb_chunks_tenant_idx ON kb_chunks (tenant_id);

CREATE TABLE conversations (
    id                  text PRIMARY KEY,
    tenant_id           text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel             text NOT NULL CHECK (channel IN ('api', 'widget', 'openai')),
    handoff_requested   boolean NOT NULL DEFAULT false,
    -- Widget visitors prove they own a conversation with a token only they hold; only its hash is kept.
    visitor_token_hash  bytea,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_tenant_idx ON conversations (tenant_id, created_at DESC);

CREATE TABLE messages (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL,
    conversation_id  text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('user', 'assistant', 'agent')),
    text             text NOT NULL,
    sources          jsonb NOT NULL DEFAULT '[]'::jsonb,
    tier             text,
    latency_ms       real,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at);

CREATE TABLE message_feedback (
    message_id  text PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    tenant_id   text NOT NULL,
    rating      text NOT NULL CHECK (rating IN ('up', 'down')),
    comment     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE widget_keys (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Public by design (it sits in the tenant's web page); the allowed origins are what protect it.
    key              text NOT NULL UNIQUE,
    name             text NOT NULL,
    allowed_origins  text[] NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);
CREATE INDEX widget_keys_tenant_idx ON widget_keys (tenant_id);

-- Written in the same transaction as what it reports; the pipelines drain it into the lake, idempotent by event_id.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid NOT NULL UNIQUE,
    tenant_id   text NOT NULL,
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_tenant_idx ON outbox (tenant_id, id);
