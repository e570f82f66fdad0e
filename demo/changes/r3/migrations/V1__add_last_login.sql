-- R3: users.last_login is added; the new application version sets it on login.
-- Replication-compatible (a new nullable column): it can be staged with continuous sync.
ALTER TABLE users ADD COLUMN last_login timestamp;
