CREATE TABLE t (id int PRIMARY KEY, amount integer, code varchar(10));
-- @change
ALTER TABLE t ALTER COLUMN amount TYPE bigint;
ALTER TABLE t ALTER COLUMN code TYPE varchar(40);
-- @expect kind=column name=t.amount change=modified attribute=type
-- @expect kind=column name=t.code change=modified attribute=type
