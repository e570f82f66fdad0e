CREATE TABLE orders (id int PRIMARY KEY, amount integer);
CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 100;
-- @change
DROP VIEW big_orders;
ALTER TABLE orders ALTER COLUMN amount TYPE numeric(12,2);
CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 100;
-- @expect kind=column name=orders.amount attribute=type
