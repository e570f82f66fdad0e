CREATE TABLE orders (id serial PRIMARY KEY, note text);
CREATE INDEX orders_note ON orders (note);
-- @change
ALTER TABLE orders RENAME TO purchases;
-- @expect kind=table name=orders change=removed
-- @expect kind=table name=purchases change=added
