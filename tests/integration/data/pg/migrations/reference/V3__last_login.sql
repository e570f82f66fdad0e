-- R3: additive column, set by the new application version on login.
ALTER TABLE users ADD COLUMN last_login timestamp;
