-- Several named forward destinations, each with its own delivery state per event, a pull
-- feed with stable cursors, and pausing a destination.

-- The outbox position of each event, in commit order: the pull feed's cursor and each
-- destination's subscription point. Set by events_seq below, inside the inserting
-- transaction, as one more than the largest so far (see src/store/feed.rs for why a
-- cursor on it never skips an event).
ALTER TABLE events ADD COLUMN seq INTEGER; -- outbox position: 1, 2, 3, ... in commit order; never reused
UPDATE events SET seq = r.n
  FROM (SELECT id, row_number() OVER (ORDER BY transition_id) AS n FROM events) AS r
 WHERE r.id = events.id;
CREATE UNIQUE INDEX events_seq ON events (seq);
CREATE TRIGGER events_seq AFTER INSERT ON events WHEN NEW.seq IS NULL
BEGIN
    UPDATE events SET seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM events) WHERE id = NEW.id;
END;

-- Each configured destination ([forward] url is the one named default), by name.
CREATE TABLE destination_state (
    name             TEXT    PRIMARY KEY,       -- [a-z0-9-], as configured
    url              TEXT    NOT NULL,          -- its URL as last configured
    subscribed_seq   INTEGER,                   -- deliveries exist for its events up to this events.seq; NULL until the forwarder first runs with it
    paused_at_ms     INTEGER,                   -- set by payhook events pause: nothing is sent until resumed
    paused_note      TEXT,                      -- the operator's --note
    created_at_ms    INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per (event, destination): the delivery state the forwarder works from. The
-- events row's status, attempts, next_attempt_at_ms, delivered_at_ms and last_error
-- summarise its rows here (triggers below).
CREATE TABLE deliveries (
    event_id               TEXT    NOT NULL REFERENCES events(id), -- the event delivered
    destination            TEXT    NOT NULL REFERENCES destination_state(name), -- where to
    transaction_id         INTEGER NOT NULL REFERENCES transactions(id), -- the event's, for ordering
    transition_id          INTEGER NOT NULL, -- the event's, for ordering within its transaction
    status                 TEXT    NOT NULL DEFAULT 'pending' -- pending: to deliver; delivered: acknowledged (2xx); dead: gave up, replayable
                           CHECK (status IN ('pending','delivered','dead')),
    attempts               INTEGER NOT NULL DEFAULT 0, -- attempts in the current schedule
    next_attempt_at_ms     INTEGER,             -- when to try next; NULL once delivered or dead
    schedule_started_at_ms INTEGER NOT NULL,    -- start of the current schedule (creation, replay, resume); retry_horizon counts from it
    delivered_at_ms        INTEGER,
    last_error             TEXT,                -- why the last attempt failed
    PRIMARY KEY (event_id, destination)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at_ms) WHERE status = 'pending';
CREATE INDEX deliveries_order ON deliveries (destination, transaction_id, transition_id) WHERE status = 'pending';

-- Today's events belong to the one destination there was.
INSERT INTO destination_state (name, url, subscribed_seq, created_at_ms)
    SELECT 'default', COALESCE((SELECT url FROM destinations ORDER BY url LIMIT 1), ''),
           (SELECT MAX(seq) FROM events), CAST(unixepoch('subsec') * 1000 AS INTEGER)
     WHERE EXISTS (SELECT 1 FROM events);
INSERT INTO deliveries (event_id, destination, transaction_id, transition_id, status, attempts,
                        next_attempt_at_ms, schedule_started_at_ms, delivered_at_ms, last_error)
    SELECT id, 'default', transaction_id, transition_id, status, attempts, next_attempt_at_ms,
           COALESCE(schedule_started_at_ms, created_at_ms), delivered_at_ms, last_error
      FROM events;

CREATE TRIGGER deliveries_summary_insert AFTER INSERT ON deliveries
BEGIN
    UPDATE events SET
        status = CASE
            WHEN EXISTS (SELECT 1 FROM deliveries WHERE event_id = NEW.event_id AND status = 'pending') THEN 'pending'
            WHEN EXISTS (SELECT 1 FROM deliveries WHERE event_id = NEW.event_id AND status = 'dead') THEN 'dead'
            ELSE 'delivered' END,
        attempts = (SELECT SUM(attempts) FROM deliveries WHERE event_id = NEW.event_id),
        next_attempt_at_ms = (SELECT MIN(next_attempt_at_ms) FROM deliveries WHERE event_id = NEW.event_id AND status = 'pending'),
        delivered_at_ms = (SELECT CASE WHEN COUNT(*) = COUNT(delivered_at_ms) THEN MAX(delivered_at_ms) END
                             FROM deliveries WHERE event_id = NEW.event_id),
        last_error = (SELECT last_error FROM deliveries WHERE event_id = NEW.event_id AND status <> 'delivered'
                         AND last_error IS NOT NULL ORDER BY destination LIMIT 1),
        schedule_started_at_ms = (SELECT MAX(schedule_started_at_ms) FROM deliveries WHERE event_id = NEW.event_id)
    WHERE id = NEW.event_id;
END;
CREATE TRIGGER deliveries_summary_update AFTER UPDATE ON deliveries
BEGIN
    UPDATE events SET
        status = CASE
            WHEN EXISTS (SELECT 1 FROM deliveries WHERE event_id = NEW.event_id AND status = 'pending') THEN 'pending'
            WHEN EXISTS (SELECT 1 FROM deliveries WHERE event_id = NEW.event_id AND status = 'dead') THEN 'dead'
            ELSE 'delivered' END,
        attempts = (SELECT SUM(attempts) FROM deliveries WHERE event_id = NEW.event_id),
        next_attempt_at_ms = (SELECT MIN(next_attempt_at_ms) FROM deliveries WHERE event_id = NEW.event_id AND status = 'pending'),
        delivered_at_ms = (SELECT CASE WHEN COUNT(*) = COUNT(delivered_at_ms) THEN MAX(delivered_at_ms) END
                             FROM deliveries WHERE event_id = NEW.event_id),
        last_error = (SELECT last_error FROM deliveries WHERE event_id = NEW.event_id AND status <> 'delivered'
                         AND last_error IS NOT NULL ORDER BY destination LIMIT 1),
        schedule_started_at_ms = (SELECT MAX(schedule_started_at_ms) FROM deliveries WHERE event_id = NEW.event_id)
    WHERE id = NEW.event_id;
END;

-- The destination each attempt went to, by name (rows before this migration: default).
ALTER TABLE attempts ADD COLUMN destination_name TEXT NOT NULL DEFAULT 'default'; -- destination_state.name

-- Operator replays, part of each delivery's history (payhook events show).
CREATE TABLE replays (
    id           INTEGER PRIMARY KEY,           -- replay number, global
    event_id     TEXT    NOT NULL REFERENCES events(id), -- the event replayed
    destination  TEXT    NOT NULL,              -- destination_state.name
    at_ms        INTEGER NOT NULL,
    requested_by TEXT    NOT NULL,              -- who asked: the operator's login name, or the caller
    note         TEXT                           -- the operator's --note
);
CREATE INDEX replays_event ON replays (event_id);

-- Deliveries the merchant's receivers never acknowledged, one row per event and destination.
DROP VIEW dead_letters;
CREATE VIEW dead_letters AS
    SELECT e.id, e.type, t.provider, t.provider_ref, d.attempts, d.last_error, e.created_at_ms,
           d.destination
    FROM deliveries d JOIN events e ON e.id = d.event_id
    JOIN transactions t ON t.id = e.transaction_id
    WHERE d.status = 'dead';

-- What each destination still has to deliver.
CREATE VIEW delivery_backlog AS
    SELECT s.name AS destination, s.paused_at_ms, count(d.event_id) AS pending,
           min(e.created_at_ms) AS oldest_created_at_ms
    FROM destination_state s
    LEFT JOIN deliveries d ON d.destination = s.name AND d.status = 'pending'
    LEFT JOIN events e ON e.id = d.event_id
    GROUP BY s.name;
