CREATE FUNCTION add_one(i integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT i + 1 $$;
CREATE FUNCTION gone() RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$;
-- @change
CREATE OR REPLACE FUNCTION add_one(i integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT i + 2 $$;
DROP FUNCTION gone();
CREATE FUNCTION add_one(i bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT i + 1 $$;
-- @expect kind=function name=add_one(i integer) change=modified attribute=body
-- @expect kind=function name=gone() change=removed
-- @expect kind=function name=add_one(i bigint) change=added
