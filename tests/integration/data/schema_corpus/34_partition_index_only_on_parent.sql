CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
-- the source has only the parent's index (ON ONLY: INVALID, no partition indexes); the target has all of them
CREATE INDEX events_at_idx ON ONLY events (at);
-- @change
CREATE INDEX events_2025_at ON events_2025 (at);
CREATE INDEX events_2026_at ON events_2026 (at);
ALTER INDEX events_at_idx ATTACH PARTITION events_2025_at;
ALTER INDEX events_at_idx ATTACH PARTITION events_2026_at;
-- @expect kind=index name=events_at_idx change=modified attribute=valid
-- @expect kind=index name=events_2025_at change=added
-- @expect kind=index name=events_2026_at change=added
