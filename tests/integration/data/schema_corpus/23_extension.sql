CREATE TABLE t (id int PRIMARY KEY);
-- @change
CREATE EXTENSION IF NOT EXISTS pg_trgm;
-- @expect kind=extension name=pg_trgm change=added
