CREATE TABLE measurements (id bigint NOT NULL, taken date NOT NULL, v numeric, PRIMARY KEY (id, taken)) PARTITION BY RANGE (taken);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
-- @change
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
ALTER TABLE measurements ADD COLUMN unit text;
-- @expect kind=table name=measurements_2026 change=added
-- @expect kind=column name=measurements.unit change=added
