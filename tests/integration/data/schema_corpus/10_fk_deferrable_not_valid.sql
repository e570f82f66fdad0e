CREATE TABLE p (id int PRIMARY KEY);
CREATE TABLE c (id int PRIMARY KEY, p_id int, CONSTRAINT c_p_fkey FOREIGN KEY (p_id) REFERENCES p(id));
-- @change
ALTER TABLE c DROP CONSTRAINT c_p_fkey;
ALTER TABLE c ADD CONSTRAINT c_p_fkey FOREIGN KEY (p_id) REFERENCES p(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED NOT VALID;
-- @expect kind=constraint name=c.c_p_fkey change=modified
