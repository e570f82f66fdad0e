CREATE TABLE sales (id int PRIMARY KEY, region text, amount numeric);
-- @change
CREATE MATERIALIZED VIEW sales_by_region AS SELECT region, sum(amount) AS total FROM sales GROUP BY region;
CREATE UNIQUE INDEX sales_by_region_region ON sales_by_region (region);
-- @expect kind=materialized_view name=sales_by_region change=added
-- @expect kind=index name=sales_by_region_region change=added
