CREATE TABLE t (id int PRIMARY KEY, email text, age int);
-- @change
ALTER TABLE t ADD CONSTRAINT t_email_key UNIQUE (email);
ALTER TABLE t ADD CONSTRAINT t_age_check CHECK (age >= 0);
-- @expect kind=constraint name=t.t_email_key change=added
-- @expect kind=constraint name=t.t_age_check change=added
