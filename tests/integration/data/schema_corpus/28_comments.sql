CREATE TABLE t (id int PRIMARY KEY, a text);
-- @change
COMMENT ON TABLE t IS 'the t table';
COMMENT ON COLUMN t.a IS 'an a';
-- @expect kind=table name=t attribute=comment
-- @expect kind=column name=t.a attribute=comment
