-- Announce every change again, listened to or not.
CREATE OR REPLACE FUNCTION wikigraph_notify_change() RETURNS trigger
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

DROP TABLE event_listeners;
