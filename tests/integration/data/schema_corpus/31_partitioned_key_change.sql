CREATE TABLE ev (id int NOT NULL, kind text NOT NULL) PARTITION BY LIST (kind);
-- @change
DROP TABLE ev;
CREATE TABLE ev (id int NOT NULL, kind text NOT NULL) PARTITION BY HASH (id);
-- @manual
-- @expect kind=table name=ev attribute=partition_key
