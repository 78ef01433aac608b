-- Every write's trigger asks whether some event_listeners row has not expired: with this index
-- that is one index probe however many rows there are, and the server's cleanup of rows of
-- instances that died without unregistering (expired for a minute) finds them the same way.
CREATE INDEX event_listeners_expires_at_idx ON event_listeners (expires_at);
