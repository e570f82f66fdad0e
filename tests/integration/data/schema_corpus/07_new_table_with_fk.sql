CREATE TABLE users (user_id serial PRIMARY KEY, full_name text);
-- @change
CREATE TABLE user_profiles (profile_id serial PRIMARY KEY, user_id integer REFERENCES users(user_id), profile_data jsonb);
-- @expect kind=table name=user_profiles change=added
-- @expect kind=sequence name=user_profiles_profile_id_seq change=added
-- @expect kind=constraint name=user_profiles.user_profiles_pkey change=added
-- @expect kind=constraint name=user_profiles.user_profiles_user_id_fkey change=added
