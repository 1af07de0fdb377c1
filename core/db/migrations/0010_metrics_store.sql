-- The metrics store the dashboards read: gold's daily facts per tenant (and per tenant and intent), exported by the
-- pipelines, and hourly usage rolled up from the router's usage rows. With TimescaleDB the daily tables are
-- hypertables (compressed after 90 days) and usage_hourly is a continuous aggregate; without it the same tables and
-- the same view name run on plain PostgreSQL (BRIN indexes on the day, usage_hourly a materialized view that the
-- pipelines refresh). Queries use date_bin, which both modes have, so both answer with the same numbers.

CREATE TABLE tenant_daily (
    tenant_id                  text NOT NULL,
    day                        date NOT NULL,
    conversations              integer NOT NULL DEFAULT 0,
    resolved                   integer NOT NULL DEFAULT 0,
    handoff                    integer NOT NULL DEFAULT 0,
    abandoned                  integer NOT NULL DEFAULT 0,
    open                       integer NOT NULL DEFAULT 0,
    deflection_rate            double precision,
    messages                   integer NOT NULL DEFAULT 0,
    user_messages              integer NOT NULL DEFAULT 0,
    assistant_messages         integer NOT NULL DEFAULT 0,
    unanswered                 integer NOT NULL DEFAULT 0,
    answered_by_cache          integer NOT NULL DEFAULT 0,
    answered_by_kb             integer NOT NULL DEFAULT 0,
    answered_by_local          integer NOT NULL DEFAULT 0,
    answered_by_llm            integer NOT NULL DEFAULT 0,
    feedback_up                integer NOT NULL DEFAULT 0,
    feedback_down              integer NOT NULL DEFAULT 0,
    satisfaction               double precision,
    sentiment_negative         integer NOT NULL DEFAULT 0,
    sentiment_neutral          integer NOT NULL DEFAULT 0,
    sentiment_positive         integer NOT NULL DEFAULT 0,
    sentiment_mean             double precision,
    input_tokens               bigint NOT NULL DEFAULT 0,
    output_tokens              bigint NOT NULL DEFAULT 0,
    cost_usd                   double precision NOT NULL DEFAULT 0,
    cost_per_conversation_usd  double precision,
    latency_ms_p50             double precision,
    latency_ms_p95             double precision,
    pii_redactions             integer NOT NULL DEFAULT 0,
    exported_at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE intent_daily (
    tenant_id        text NOT NULL,
    day              date NOT NULL,
    intent           text NOT NULL,
    conversations    integer NOT NULL DEFAULT 0,
    resolved         integer NOT NULL DEFAULT 0,
    handoff          integer NOT NULL DEFAULT 0,
    abandoned        integer NOT NULL DEFAULT 0,
    deflection_rate  double precision,
    messages         integer NOT NULL DEFAULT 0,
    unanswered       integer NOT NULL DEFAULT 0,
    feedback_up      integer NOT NULL DEFAULT 0,
    feedback_down    integer NOT NULL DEFAULT 0,
    negative_share   double precision,
    cost_usd         double precision NOT NULL DEFAULT 0,
    exported_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day, intent)
);

-- Which version of each gold table the store holds (the export asset carries on from there).
CREATE TABLE metrics_exports (
    source          text PRIMARY KEY,
    source_version  bigint NOT NULL,
    exported_at     timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('tenant_daily', 'day', chunk_time_interval => INTERVAL '90 days',
                                  if_not_exists => TRUE);
        PERFORM create_hypertable('intent_daily', 'day', chunk_time_interval => INTERVAL '30 days',
                                  if_not_exists => TRUE);
        ALTER TABLE tenant_daily SET (timescaledb.compress, timescaledb.compress_segmentby = 'tenant_id',
                                      timescaledb.compress_orderby = 'day DESC');
        ALTER TABLE intent_daily SET (timescaledb.compress, timescaledb.compress_segmentby = 'tenant_id',
                                      timescaledb.compress_orderby = 'day DESC, intent');
        PERFORM add_compression_policy('tenant_daily', INTERVAL '180 days', if_not_exists => TRUE);
        PERFORM add_compression_policy('intent_daily', INTERVAL '90 days', if_not_exists => TRUE);
        -- Raw usage rows go after 13 months; the daily tables and the hourly roll-up keep the history.
        PERFORM add_retention_policy('usage', INTERVAL '395 days', if_not_exists => TRUE);
        EXECUTE $view$
            CREATE MATERIALIZED VIEW usage_hourly WITH (timescaledb.continuous) AS
            SELECT tenant_id, time_bucket(INTERVAL '1 hour', at) AS hour, tier,
                   count(*) AS calls, sum(input_tokens)::bigint AS input_tokens,
                   sum(output_tokens)::bigint AS output_tokens, sum(cost_usd)::double precision AS cost_usd,
                   count(*) FILTER (WHERE cache_hit) AS cache_hits, count(*) FILTER (WHERE outcome = 'error') AS errors
              FROM usage GROUP BY tenant_id, time_bucket(INTERVAL '1 hour', at), tier
            WITH NO DATA
        $view$;
        PERFORM add_continuous_aggregate_policy('usage_hourly', start_offset => INTERVAL '3 days',
                                                end_offset => INTERVAL '1 hour',
                                                schedule_interval => INTERVAL '30 minutes');
    ELSE
        CREATE INDEX tenant_daily_day_brin ON tenant_daily USING brin (day);
        CREATE INDEX intent_daily_day_brin ON intent_daily USING brin (day);
        CREATE MATERIALIZED VIEW usage_hourly AS
        SELECT tenant_id, date_bin(INTERVAL '1 hour', at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS hour, tier,
               count(*) AS calls, sum(input_tokens)::bigint AS input_tokens,
               sum(output_tokens)::bigint AS output_tokens, sum(cost_usd)::double precision AS cost_usd,
               count(*) FILTER (WHERE cache_hit) AS cache_hits, count(*) FILTER (WHERE outcome = 'error') AS errors
          FROM usage GROUP BY 1, 2, 3
        WITH NO DATA;
        -- REFRESH ... CONCURRENTLY needs a unique index.
        CREATE UNIQUE INDEX usage_hourly_key ON usage_hourly (tenant_id, hour, tier);
    END IF;
END
$$;
