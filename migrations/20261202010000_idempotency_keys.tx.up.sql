-- Idempotency-Key: the first request with a key claims it here (any instance), runs, and stores
-- its answer; a retry with the same key and body within the retention replays that answer.
-- The body is kept only as its SHA-256. A claim without an answer past lease_until was
-- abandoned (its instance stopped mid-way): its write's outcome is unknown.
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL, -- the caller: '' anonymous, 'user:<id>' with a token
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    owner        text        NOT NULL, -- the attempt that claimed it
    lease_until  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    status       integer,              -- the stored answer: null while the first attempt runs
    headers      jsonb,
    body         bytea,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
