-- the second statement has a typo; the first must be rolled back with it
CREATE TABLE audit_archive (LIKE audit);
INSERT INTO audit (what)
VALUES ('semicolon; in a string');
CREATE TABEL oops (id int);
