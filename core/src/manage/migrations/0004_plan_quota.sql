-- A plan's requests per day (UTC) per consumer, beside its rate per minute.
ALTER TABLE plans ADD COLUMN quota_per_day BIGINT;
