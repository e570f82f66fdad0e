CREATE TABLE cache (k text PRIMARY KEY, v text);
CREATE TABLE base_event (id int, at timestamptz);
-- @change
ALTER TABLE cache SET UNLOGGED;
CREATE TABLE click_event (url text) INHERITS (base_event);
-- @expect kind=table name=cache attribute=persistence
-- @expect kind=table name=click_event change=added
