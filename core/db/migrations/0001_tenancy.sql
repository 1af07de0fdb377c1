-- Tenants, their API keys, and the append-only audit log of admin actions.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Operators find tenants by name; two tenants called "Acme" would be a support incident.
CREATE UNIQUE INDEX tenants_name_key ON tenants (lower(name));

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'agent', 'analyst', 'viewer')),
    -- The key is shown once; only its lookup prefix and a SHA-256 of the whole key are kept.
    prefix        text NOT NULL UNIQUE,
    secret_hash   bytea NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    -- No foreign key: the trail must outlive what it describes.
    tenant_id   text,
    target      text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id  text
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, at DESC);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
