CREATE TABLE addr (id int PRIMARY KEY, city text, zip text, country text);
CREATE STATISTICS addr_city_zip (dependencies) ON city, zip FROM addr;
-- @change
DROP STATISTICS addr_city_zip;
CREATE STATISTICS addr_city_zip (dependencies, ndistinct) ON city, zip FROM addr;
CREATE STATISTICS addr_country ON country, city FROM addr;
ALTER STATISTICS addr_country SET STATISTICS 200;
-- @expect kind=statistics name=addr_city_zip change=modified attribute=definition
-- @expect kind=statistics name=addr_country change=added
