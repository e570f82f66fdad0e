CREATE TABLE log (msg text);
-- @change
CREATE PROCEDURE write_log(m text) LANGUAGE sql AS $$ INSERT INTO log VALUES (m) $$;
-- @expect kind=procedure name=write_log(IN m text) change=added
