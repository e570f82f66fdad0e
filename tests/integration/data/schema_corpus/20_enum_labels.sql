CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE person (id int PRIMARY KEY, m mood);
-- @change
ALTER TYPE mood ADD VALUE 'ok' BEFORE 'happy';
ALTER TYPE mood ADD VALUE 'ecstatic';
CREATE TYPE colour AS ENUM ('red', 'green');
-- @expect kind=enum name=mood change=modified attribute=labels
-- @expect kind=enum name=colour change=added
