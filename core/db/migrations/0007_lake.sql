-- How far the lake has drained the outbox. The lake's own log is the truth (each bronze commit carries the outbox id
-- it reached as a Delta app transaction); this row lets the drain delete what landed and is repaired from the lake
-- after a crash between the Delta commit and this update (core/outbox.py).
CREATE TABLE outbox_watermark (
    consumer    text PRIMARY KEY,
    drained_to  bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
