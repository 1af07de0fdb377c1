-- What the dashboards' realised routing saving reads: per tenant, UTC day, intent and way of routing (a learned route
-- or the exploration that keeps the plain policy), the answers and their cost. A roll-up, so a costs request reads a
-- row per day and intent instead of every answer of its range (a large tenant's year is hundreds of thousands of
-- usage rows: 0.3 s a request, bench/dashboard.py). A continuous aggregate with TimescaleDB; a materialized view the
-- pipelines refresh beside usage_hourly without it.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE $view$
            CREATE MATERIALIZED VIEW routing_daily WITH (timescaledb.continuous) AS
            SELECT tenant_id, time_bucket(INTERVAL '1 day', at) AS day_start, intent, routed_by,
                   count(*) AS answers, sum(cost_usd)::double precision AS cost_usd
              FROM usage
             WHERE routed_by IN ('intent', 'explore') AND intent IS NOT NULL AND tier <> 'summary'
             GROUP BY tenant_id, time_bucket(INTERVAL '1 day', at), intent, routed_by
            WITH NO DATA
        $view$;
        PERFORM add_continuous_aggregate_policy('routing_daily', start_offset => INTERVAL '3 days',
                                                end_offset => INTERVAL '1 hour',
                                                schedule_interval => INTERVAL '30 minutes');
    ELSE
        CREATE MATERIALIZED VIEW routing_daily AS
        SELECT tenant_id, date_bin(INTERVAL '1 day', at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS day_start, intent,
               routed_by, count(*) AS answers, sum(cost_usd)::double precision AS cost_usd
          FROM usage
         WHERE routed_by IN ('intent', 'explore') AND intent IS NOT NULL AND tier <> 'summary'
         GROUP BY 1, 2, 3, 4
        WITH DATA;  -- readable from the start (an unfilled view refuses reads); the pipelines keep it current
        CREATE UNIQUE INDEX routing_daily_key ON routing_daily (tenant_id, day_start, intent, routed_by);
    END IF;
END
$$;
