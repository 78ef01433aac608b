-- Keyset pagination and filters of usersConnection.
CREATE INDEX users_username_id_idx ON users (username, id);
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
-- usernamePrefix: lower(username) LIKE 'prefix%' needs pattern ordering.
CREATE INDEX users_username_prefix_idx ON users (lower(username) text_pattern_ops);
-- emailDomain: the part after the last '@'.
CREATE INDEX users_email_domain_idx ON users (lower(substring(email from '[^@]*$')));
