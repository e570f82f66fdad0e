CREATE TABLE users (user_id int PRIMARY KEY, name text);
CREATE VIEW user_names AS SELECT user_id, name FROM users;
-- @change
ALTER VIEW user_names RENAME COLUMN name TO full_name;
COMMENT ON COLUMN user_names.user_id IS 'the user';
-- @expect kind=view name=user_names change=modified attribute=definition
-- @expect kind=view name=user_names change=modified attribute=column_comments
