CREATE TABLE t (id int PRIMARY KEY, name text);
-- @change
ALTER TABLE t ALTER COLUMN name TYPE text COLLATE "C";
ALTER TABLE t ADD COLUMN title text COLLATE "POSIX";
-- @expect kind=column name=t.name attribute=collation
-- @expect kind=column name=t.title change=added
