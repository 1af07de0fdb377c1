-- Training reads a tenant's labelled examples from the lake (silver/intent_examples, fed by the outbox): a job records
-- how many examples the tenant had when it was queued, and starts once the lake holds at least that many.
ALTER TABLE training_jobs ADD COLUMN examples integer NOT NULL DEFAULT 0;
