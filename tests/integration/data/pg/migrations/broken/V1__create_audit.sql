CREATE TABLE audit (id serial PRIMARY KEY, what text);
