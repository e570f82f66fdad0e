CREATE TABLE t (id int PRIMARY KEY);
-- @change
CREATE SCHEMA reporting;
CREATE TABLE reporting.daily (day date PRIMARY KEY, total numeric NOT NULL DEFAULT 0);
-- @expect kind=schema name=reporting change=added
-- @expect kind=table schema=reporting name=daily change=added
