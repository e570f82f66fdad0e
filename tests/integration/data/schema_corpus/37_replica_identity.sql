CREATE TABLE a (id int PRIMARY KEY, v text);
CREATE TABLE b (id int NOT NULL, v text);
CREATE UNIQUE INDEX b_id ON b (id);
-- @change
ALTER TABLE a REPLICA IDENTITY FULL;
ALTER TABLE b REPLICA IDENTITY USING INDEX b_id;
-- @expect kind=table name=a change=modified attribute=replica_identity
-- @expect kind=table name=b change=modified attribute=replica_identity
