-- What the dashboards read beside the daily facts: the questions the bot could not answer (from silver, counted per
-- tenant, day and normalised question, the most asked of each day kept), and what the learned routes are expected to
-- save (written by the routing-policy asset beside each route).

CREATE TABLE unanswered_daily (
    tenant_id  text NOT NULL,
    day        date NOT NULL,
    question   text NOT NULL,  -- normalised: lower case, single spaces, no trailing punctuation (PII already redacted)
    example    text NOT NULL,  -- one of the questions as a customer wrote it
    asked      integer NOT NULL CHECK (asked > 0),
    PRIMARY KEY (tenant_id, day, question)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('unanswered_daily', 'day', chunk_time_interval => INTERVAL '30 days',
                                  if_not_exists => TRUE);
        ALTER TABLE unanswered_daily SET (timescaledb.compress, timescaledb.compress_segmentby = 'tenant_id',
                                          timescaledb.compress_orderby = 'day DESC, question');
        PERFORM add_compression_policy('unanswered_daily', INTERVAL '90 days', if_not_exists => TRUE);
    ELSE
        CREATE INDEX unanswered_daily_day_brin ON unanswered_daily USING brin (day);
    END IF;
END
$$;

-- A route's economics when it was computed: the mean cost of an answer on the tier with the best measured quality
-- for the intent (what the tenant would pay without the route), on the route's tier, and the answers a day the intent
-- had over the window the asset looked at. Projected saving a day = (baseline - route) * answers_per_day * (1 - explore).
ALTER TABLE routing_policy ADD COLUMN baseline_tier text;
ALTER TABLE routing_policy ADD COLUMN baseline_quality real CHECK (baseline_quality >= 0 AND baseline_quality <= 1);
ALTER TABLE routing_policy ADD COLUMN baseline_cost_usd double precision CHECK (baseline_cost_usd >= 0);
ALTER TABLE routing_policy ADD COLUMN route_cost_usd double precision CHECK (route_cost_usd >= 0);
ALTER TABLE routing_policy ADD COLUMN answers_per_day double precision CHECK (answers_per_day >= 0);
