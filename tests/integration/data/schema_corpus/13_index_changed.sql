CREATE TABLE t (id int PRIMARY KEY, a int, b int);
CREATE INDEX t_ab ON t (a);
CREATE INDEX t_gone ON t (b);
-- @change
DROP INDEX t_ab;
CREATE INDEX t_ab ON t (a, b);
DROP INDEX t_gone;
-- @expect kind=index name=t_ab change=modified attribute=keys
-- @expect kind=index name=t_gone change=removed
