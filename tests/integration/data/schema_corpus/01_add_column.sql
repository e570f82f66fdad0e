CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);
-- @change
ALTER TABLE users ADD COLUMN last_login timestamp;
-- @expect kind=column name=users.last_login change=added
