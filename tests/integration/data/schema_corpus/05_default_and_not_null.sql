CREATE TABLE t (id int PRIMARY KEY, status text, note text NOT NULL DEFAULT 'x');
-- @change
ALTER TABLE t ALTER COLUMN status SET DEFAULT 'new';
ALTER TABLE t ALTER COLUMN status SET NOT NULL;
ALTER TABLE t ALTER COLUMN note DROP NOT NULL;
ALTER TABLE t ALTER COLUMN note DROP DEFAULT;
-- @expect kind=column name=t.status attribute=default
-- @expect kind=column name=t.status attribute=nullable
-- @expect kind=column name=t.note attribute=nullable
-- @expect kind=column name=t.note attribute=default
