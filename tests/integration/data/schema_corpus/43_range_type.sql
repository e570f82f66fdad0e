CREATE TABLE slots (id int PRIMARY KEY);
-- @change
CREATE TYPE floatrange AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = float8mi);
ALTER TABLE slots ADD COLUMN span floatrange;
-- @expect kind=range_type name=floatrange change=added
-- @expect kind=column name=slots.span change=added
