CREATE TABLE t (id int PRIMARY KEY, email text, deleted boolean);
-- @change
CREATE UNIQUE INDEX t_email_live ON t (lower(email)) WHERE NOT deleted;
CREATE INDEX t_deleted_brin ON t USING brin (id);
-- @expect kind=index name=t_email_live change=added
-- @expect kind=index name=t_deleted_brin change=added
