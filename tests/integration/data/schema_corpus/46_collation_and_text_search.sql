CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
-- @change
CREATE COLLATION nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
ALTER TABLE docs ALTER COLUMN title TYPE text COLLATE nocase;
CREATE TEXT SEARCH CONFIGURATION docs_english (COPY = english);
ALTER TEXT SEARCH CONFIGURATION docs_english DROP MAPPING FOR email;
CREATE INDEX docs_body_fts ON docs USING gin (to_tsvector('docs_english', body));
-- @expect kind=collation name=nocase change=added
-- @expect kind=text_search_configuration name=docs_english change=added
-- @expect kind=column name=docs.title change=modified attribute=collation
-- @expect kind=index name=docs_body_fts change=added
