-- Call analytics: one row per period (minute, hour, day), tenant, API, route, consumer and
-- status class, with its count, errors, bytes and a latency histogram (l0..l13: the buckets
-- of core/src/calls.rs LATENCY_MS). Minute rows roll up into hours, hours into days.
CREATE TABLE calls (
    period TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    api TEXT NOT NULL,
    route TEXT NOT NULL,
    consumer TEXT NOT NULL,
    class BIGINT NOT NULL,
    count BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    l0 BIGINT NOT NULL, l1 BIGINT NOT NULL, l2 BIGINT NOT NULL, l3 BIGINT NOT NULL,
    l4 BIGINT NOT NULL, l5 BIGINT NOT NULL, l6 BIGINT NOT NULL, l7 BIGINT NOT NULL,
    l8 BIGINT NOT NULL, l9 BIGINT NOT NULL, l10 BIGINT NOT NULL, l11 BIGINT NOT NULL,
    l12 BIGINT NOT NULL, l13 BIGINT NOT NULL,
    PRIMARY KEY (period, start_ms, tenant, api, route, consumer, class)
);
CREATE INDEX calls_by_tenant ON calls (tenant, start_ms);
