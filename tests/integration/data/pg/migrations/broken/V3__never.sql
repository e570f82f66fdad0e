CREATE TABLE never_created (id int);
