CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);
-- @change
ALTER TABLE users DROP COLUMN creation_date;
-- @expect kind=column name=users.creation_date change=removed
