-- Custom intent models: the tenant's labelled examples, the intent each customer message was given, and training jobs
-- (queued by the API, run by the pipelines' training asset, so the serving tier never trains).

CREATE TABLE intent_examples (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    text        text NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
    intent      text NOT NULL CHECK (length(intent) BETWEEN 1 AND 100),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, text, intent)
);
CREATE INDEX intent_examples_tenant ON intent_examples (tenant_id, intent);

ALTER TABLE messages ADD COLUMN intent text;
ALTER TABLE messages ADD COLUMN intent_confidence real;

CREATE TABLE training_jobs (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('intent', 'sentiment')),
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    run_id       text,      -- the MLflow run
    model_uri    text,
    metrics      jsonb,
    promoted     boolean,
    detail       text       -- why it failed, or why the challenger was (not) promoted
);
CREATE INDEX training_jobs_queue ON training_jobs (status, requested_at) WHERE status = 'queued';
CREATE INDEX training_jobs_tenant ON training_jobs (tenant_id, requested_at DESC);
