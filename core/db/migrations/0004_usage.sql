-- Model usage, one row per answer: what it cost and how it went. A TimescaleDB hypertable when the server has the
-- extension preloaded (a managed Timescale server), a plain table otherwise (the embedded server has no Timescale).

CREATE TABLE usage (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    at               timestamptz NOT NULL DEFAULT now(),
    tenant_id        text NOT NULL,
    conversation_id  text,
    message_id       text,
    tier             text NOT NULL,
    provider         text,
    model            text,
    input_tokens     integer NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens    integer NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost_usd         numeric(14, 8) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    latency_ms       real,
    cache_hit        boolean NOT NULL DEFAULT false,
    outcome          text NOT NULL CHECK (outcome IN ('ok', 'fallback', 'error')),
    -- A hypertable's unique keys must include its time column.
    PRIMARY KEY (tenant_id, at, id)
);

DO $$
BEGIN
    IF current_setting('shared_preload_libraries', true) LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('usage', 'at', if_not_exists => true);
    END IF;
END
$$;
