-- dualboot: transactional=false
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_user_name ON users (user_name);
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_user_id ON orders (user_id);
