-- placeholder, replaced by the real schema
CREATE TABLE IF NOT EXISTS placeholder(x);
