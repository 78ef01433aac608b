DROP INDEX users_email_domain_idx;
DROP INDEX users_username_prefix_idx;
DROP INDEX users_created_at_id_idx;
DROP INDEX users_username_id_idx;
