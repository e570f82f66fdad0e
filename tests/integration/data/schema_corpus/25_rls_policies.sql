CREATE TABLE docs (id int PRIMARY KEY, owner_name text);
-- @change
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY docs_owner ON docs FOR SELECT TO PUBLIC USING (owner_name = current_user);
-- @expect kind=table name=docs attribute=row_security
-- @expect kind=policy name=docs.docs_owner change=added
