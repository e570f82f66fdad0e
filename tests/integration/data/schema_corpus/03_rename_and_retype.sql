CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);
-- @change
ALTER TABLE users RENAME COLUMN user_name TO full_name;
ALTER TABLE users ALTER COLUMN full_name TYPE text;
-- @expect kind=column name=users.user_name change=removed
-- @expect kind=column name=users.full_name change=added
