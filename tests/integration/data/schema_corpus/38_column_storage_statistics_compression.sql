CREATE TABLE docs (id int PRIMARY KEY, body text, meta jsonb);
-- @change
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE docs ALTER COLUMN id SET STATISTICS 500;
ALTER TABLE docs ALTER COLUMN meta SET COMPRESSION pglz;
CREATE TABLE notes (id int, body text);
ALTER TABLE notes ALTER COLUMN body SET STORAGE MAIN;
ALTER TABLE notes ALTER COLUMN id SET STATISTICS 50;
-- @expect kind=column name=docs.body change=modified attribute=storage
-- @expect kind=column name=docs.id change=modified attribute=statistics_target
-- @expect kind=column name=docs.meta change=modified attribute=compression
-- @expect kind=table name=notes change=added
