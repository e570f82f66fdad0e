-- R2: one user_profiles row per user with {"name", "created"}; then the moved columns are dropped.
CREATE TABLE user_profiles (
    profile_id serial PRIMARY KEY,
    user_id integer REFERENCES users (user_id),
    profile_data jsonb
);
INSERT INTO user_profiles (user_id, profile_data)
SELECT user_id, jsonb_build_object('name', full_name, 'created', creation_date) FROM users ORDER BY user_id;
ALTER TABLE users DROP COLUMN full_name, DROP COLUMN creation_date;
