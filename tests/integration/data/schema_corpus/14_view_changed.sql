CREATE TABLE users (user_id int PRIMARY KEY, name text, active boolean);
CREATE VIEW active_users AS SELECT user_id, name FROM users WHERE active;
-- @change
CREATE OR REPLACE VIEW active_users AS SELECT user_id, name FROM users WHERE active AND name IS NOT NULL;
CREATE VIEW user_names AS SELECT name FROM users;
-- @expect kind=view name=active_users change=modified attribute=definition
-- @expect kind=view name=user_names change=added
