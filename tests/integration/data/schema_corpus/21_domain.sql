CREATE DOMAIN posint AS integer CONSTRAINT posint_check CHECK (VALUE > 0);
CREATE TABLE t (id int PRIMARY KEY, n posint);
-- @change
ALTER DOMAIN posint SET NOT NULL;
ALTER DOMAIN posint ADD CONSTRAINT posint_small CHECK (VALUE < 1000000);
CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
-- @expect kind=domain name=posint attribute=not_null
-- @expect kind=domain name=posint attribute=constraints
-- @expect kind=domain name=email change=added
