-- Every committed change to users and items is announced on the wikigraph_events channel, from
-- inside the writing transaction: a rolled-back write announces nothing, and cascaded deletes are
-- announced too. Payloads carry ids and kinds only (NOTIFY payloads are limited to 8000 bytes);
-- subscribers load the rows. A deleted row can no longer be loaded, so its last state is kept in
-- deleted_rows for a while (the server prunes old entries).
CREATE TABLE deleted_rows (
    entity     text        NOT NULL,
    id         bigint      NOT NULL,
    snapshot   jsonb       NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, id)
);
CREATE INDEX deleted_rows_deleted_at_idx ON deleted_rows (deleted_at);

CREATE FUNCTION wikigraph_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    what text := TG_ARGV[0];
    r    jsonb;
    kind text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := to_jsonb(OLD);
        kind := 'DELETED';
        INSERT INTO deleted_rows AS d (entity, id, snapshot) VALUES (what, OLD.id, r)
        ON CONFLICT ON CONSTRAINT deleted_rows_pkey DO UPDATE SET snapshot = EXCLUDED.snapshot, deleted_at = now();
    ELSE
        r := to_jsonb(NEW);
        kind := CASE TG_OP WHEN 'INSERT' THEN 'CREATED' ELSE 'UPDATED' END;
    END IF;
    PERFORM pg_notify('wikigraph_events', json_build_object(
        'e', what, 'k', kind, 'id', (r->>'id')::bigint, 'o', (r->>'owner_id')::bigint)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_change AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION wikigraph_notify_change('user');
CREATE TRIGGER items_notify_change AFTER INSERT OR UPDATE OR DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION wikigraph_notify_change('item');
