CREATE SEQUENCE invoice_no START 1000 INCREMENT 1;
CREATE SEQUENCE gone_seq;
-- @change
ALTER SEQUENCE invoice_no INCREMENT BY 10 MAXVALUE 999999 CACHE 5 CYCLE;
DROP SEQUENCE gone_seq;
CREATE SEQUENCE new_seq AS integer START 7;
-- @expect kind=sequence name=invoice_no change=modified attribute=increment
-- @expect kind=sequence name=gone_seq change=removed
-- @expect kind=sequence name=new_seq change=added
