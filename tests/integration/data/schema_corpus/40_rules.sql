CREATE TABLE log (id int, msg text);
CREATE TABLE archive (id int, msg text);
CREATE RULE log_no_delete AS ON DELETE TO log DO INSTEAD NOTHING;
-- @change
CREATE OR REPLACE RULE log_no_delete AS ON DELETE TO log DO INSTEAD INSERT INTO archive VALUES (old.id, old.msg);
CREATE RULE archive_no_update AS ON UPDATE TO archive DO INSTEAD NOTHING;
-- @expect kind=rule name=log.log_no_delete change=modified attribute=definition
-- @expect kind=rule name=archive.archive_no_update change=added
