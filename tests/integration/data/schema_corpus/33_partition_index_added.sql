CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
-- @change
CREATE INDEX events_kind_idx ON events (kind);
-- @expect kind=index name=events_kind_idx change=added
-- @expect kind=index name=events_2025_kind_idx change=added
-- @expect kind=index name=events_2026_kind_idx change=added
