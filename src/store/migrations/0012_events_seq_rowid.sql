-- events.seq, the outbox position, becomes the table's INTEGER PRIMARY KEY (its rowid), and
-- events.id, the stable event id, a UNIQUE column. The columns keep their order and what
-- payhook writes to them does not change (only a row written by hand with a NULL id or a
-- seq that is not an integer, which payhook never writes, would now be refused, and the
-- migration with it), but each new event writes one B-tree fewer: the table itself
-- is keyed by seq, so the separate unique index events_seq goes, and the INSERT's
-- MAX(seq) reads the table's last row. An INTEGER PRIMARY KEY is a named column, which
-- VACUUM never renumbers, so the pull feed's cursor is as stable as before.
-- SQLite cannot change a primary key in place, so the table is rebuilt as migration 0010
-- rebuilt it: created anew, its rows copied, the old one dropped and the new one renamed,
-- then its indexes created. deliveries, attempts and replays still reference events(id),
-- now through its UNIQUE index; the migration runner turns foreign keys off around the
-- rebuild and checks them before committing.
PRAGMA legacy_alter_table = ON;

CREATE TABLE events_new (
    id                 TEXT    NOT NULL UNIQUE, -- evt_<12 hex: transaction id><20 hex: hash of provider, provider_ref, transition seq>; sorts by transaction, stable across redeliveries and replays
    transaction_id     INTEGER NOT NULL REFERENCES transactions(id), -- the transaction it is about
    transition_id      INTEGER NOT NULL REFERENCES transitions(id), -- the transition it announces: one event each (unique index events_transaction)
    type               TEXT    NOT NULL,        -- transaction.succeeded | .failed | .reversed | .needs_review | .conflict
    payload            TEXT    NOT NULL,        -- the JSON body delivered to the merchant, fixed at creation
    status             TEXT    NOT NULL DEFAULT 'pending' -- pending: to deliver; delivered: acknowledged (2xx); dead: gave up, replayable
                       CHECK (status = 'pending' OR status = 'delivered' OR status = 'dead'),
    attempts           INTEGER NOT NULL DEFAULT 0, -- delivery attempts in the current schedule (replay resets it; table attempts keeps every one)
    next_attempt_at_ms INTEGER,                 -- when to try next; NULL once delivered or dead
    created_at_ms      INTEGER NOT NULL,
    delivered_at_ms    INTEGER,
    last_error         TEXT,                    -- why the last attempt failed; NULL after a delivery
    schedule_started_at_ms INTEGER,             -- start of the current retry schedule (NULL: created_at_ms); replay resets it; retry_horizon counts from it
    seq                INTEGER PRIMARY KEY      -- outbox position: 1, 2, 3, ... in commit order, never reused (given by the INSERT in src/store/events.rs); the pull feed's cursor
);

INSERT INTO events_new (id, transaction_id, transition_id, type, payload, status, attempts, next_attempt_at_ms, created_at_ms, delivered_at_ms, last_error, schedule_started_at_ms, seq)
    SELECT id, transaction_id, transition_id, type, payload, status, attempts, next_attempt_at_ms, created_at_ms, delivered_at_ms, last_error, schedule_started_at_ms, seq FROM events;

DROP TABLE events;

ALTER TABLE events_new RENAME TO events;

CREATE INDEX events_due ON events (next_attempt_at_ms) WHERE status = 'pending';

CREATE UNIQUE INDEX events_transaction ON events (transaction_id, transition_id);

PRAGMA legacy_alter_table = OFF;
