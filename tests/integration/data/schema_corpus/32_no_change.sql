CREATE TABLE users (user_id serial PRIMARY KEY, user_name varchar(255), creation_date timestamp);
CREATE INDEX users_created ON users (creation_date);
CREATE VIEW recent AS SELECT * FROM users WHERE creation_date > now() - interval '1 day';
-- @change
