CREATE TABLE base (id int NOT NULL, created timestamptz);
CREATE TABLE child_a (extra text) INHERITS (base);
CREATE TABLE child_b (id int NOT NULL, created timestamptz, note text);
-- @change
ALTER TABLE child_a NO INHERIT base;
ALTER TABLE child_b INHERIT base;
-- @expect kind=table name=child_a change=modified attribute=inherits
-- @expect kind=table name=child_b change=modified attribute=inherits
-- @migra-skip migra writes INHERIT / NO INHERIT statements without a terminating semicolon
