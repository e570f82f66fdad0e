CREATE TYPE address AS (street text, city text);
-- @change
ALTER TYPE address ADD ATTRIBUTE zip varchar(10);
CREATE TYPE point3 AS (x float8, y float8, z float8);
-- @expect kind=composite_type name=address attribute=attributes
-- @expect kind=composite_type name=point3 change=added
