-- The catalogue: tenants, their APIs, plans, consumers and subscriptions, and the audit
-- trail of every change. Lists are JSON arrays of strings. Plain SQL both SQLite and
-- PostgreSQL take.
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    admin_token_sha256 TEXT NOT NULL
);
CREATE TABLE apis (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    routes TEXT NOT NULL,
    visibility TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE plans (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    rate_per_minute BIGINT,
    routes TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE consumers (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    plan TEXT,
    groups_ TEXT NOT NULL,
    keys_sha256 TEXT NOT NULL,
    jwt_subjects TEXT NOT NULL,
    client_ids TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE subscriptions (
    id BIGINT PRIMARY KEY,
    tenant TEXT NOT NULL,
    consumer TEXT NOT NULL,
    api TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at_ms BIGINT NOT NULL,
    decided_by TEXT,
    decided_at_ms BIGINT,
    UNIQUE (tenant, consumer, api)
);
CREATE TABLE audit (
    id BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    tenant TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before_ TEXT,
    after_ TEXT
);
CREATE INDEX audit_by_tenant ON audit (tenant, id);
