-- R1: users.user_name becomes full_name, and its type becomes text.
ALTER TABLE users RENAME COLUMN user_name TO full_name;
ALTER TABLE users ALTER COLUMN full_name TYPE text;
