CREATE TABLE keep (id int PRIMARY KEY);
CREATE TABLE old_audit (id bigserial PRIMARY KEY, payload text);
-- @change
DROP TABLE old_audit;
-- @expect kind=table name=old_audit change=removed
