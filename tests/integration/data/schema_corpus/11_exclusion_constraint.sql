CREATE TABLE booking (id int PRIMARY KEY, room int, during tsrange);
-- @change
ALTER TABLE booking ADD CONSTRAINT booking_no_overlap EXCLUDE USING gist (during WITH &&);
-- @expect kind=constraint name=booking.booking_no_overlap change=added
