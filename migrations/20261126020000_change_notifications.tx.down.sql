DROP TRIGGER items_notify_change ON items;
DROP TRIGGER users_notify_change ON users;
DROP FUNCTION wikigraph_notify_change();
DROP TABLE deleted_rows;
