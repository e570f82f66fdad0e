CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 (id bigint NOT NULL, at date NOT NULL, kind text);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
-- @change
ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
ALTER TABLE events DETACH PARTITION events_2024;
-- @expect kind=table name=events_2026 change=modified attribute=partition_of
-- @expect kind=table name=events_2026 change=modified attribute=partition_bound
-- @expect kind=table name=events_2024 change=modified attribute=partition_of
-- @expect kind=table name=events_2024 change=modified attribute=partition_bound
-- @migra-skip migra 0.x crashes reading a partition attached after creation (schemainspect: no partition_spec)
