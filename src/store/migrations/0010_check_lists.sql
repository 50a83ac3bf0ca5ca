-- The writer's inserts get cheaper; nothing a row may hold changes.
-- * Every CHECK that listed more than two values with IN (...) becomes an OR chain of
--   equalities (schema.sql, Conventions, says why: SQLite built a temporary B-tree for
--   each such list every time it checked a row, three times per new transaction).
-- * events.seq becomes NOT NULL and its trigger goes: src/store/events.rs gives every
--   event its position in the INSERT that writes it, and any trigger on a table makes
--   every INSERT into it keep a statement journal.
-- * events.transition_id loses its own UNIQUE index. events_transaction, which the queries
--   by transaction need anyway, becomes unique instead; a transition belongs to one
--   transaction, so it still refuses a second event for a transition, with one index
--   fewer to write per event.
-- SQLite cannot change a CHECK in place, so the four tables are rebuilt as migration 0009
-- rebuilt two: each is created anew, its rows copied with their keys, the old one dropped
-- and the new one renamed, then its indexes and triggers are created. The migration
-- runner turns foreign keys off around it and checks them before committing.
PRAGMA legacy_alter_table = ON;

CREATE TABLE transactions_new (
    id                    INTEGER PRIMARY KEY,  -- referenced by transitions, polls, events
    provider              TEXT    NOT NULL,     -- a name in providers (triggers transactions_provider_*)
    provider_ref          TEXT    NOT NULL,     -- the provider's id: ZengaPay transactionReference, TransferZero transaction id, Daraja CheckoutRequestID/TransID/OriginatorConversationID, Jenga reference, Tujenge tok_<id of the matching callback token>
    kind                  TEXT    NOT NULL DEFAULT 'unknown' -- payment kind: collection, transfer (payout), stk, c2b, b2c, ipn
                          CHECK (kind = 'collection' OR kind = 'transfer' OR kind = 'stk' OR kind = 'c2b' OR kind = 'b2c' OR kind = 'ipn' OR kind = 'unknown'),
    status                TEXT    NOT NULL DEFAULT 'PENDING' -- normalised status (see Conventions)
                          CHECK (status = 'PENDING' OR status = 'INDETERMINATE' OR status = 'SUCCEEDED' OR status = 'FAILED' OR status = 'REVERSED' OR status = 'NEEDS_REVIEW'),
    reason                TEXT,                 -- normalised why: CANCELLED_BY_USER, INSUFFICIENT_FUNDS, AMOUNT_MISMATCH, DEADLINE_PASSED, ...
    provider_status       TEXT,                 -- the provider's own last status word or code, verbatim
    amount_minor          INTEGER,              -- amount the provider reported, in minor units
    currency              TEXT,                 -- ISO-4217 code of amount_minor
    expected_amount_minor INTEGER,              -- amount the merchant registered (track); a different reported amount goes to review
    expected_currency     TEXT,                 -- ISO-4217 code of expected_amount_minor
    merchant_ref          TEXT,                 -- the merchant's own reference (external id, AccountReference, ...)
    msisdn                TEXT,                 -- payer or payee phone number as the provider gave it (may be masked)
    receipt               TEXT,                 -- network receipt (M-Pesa receipt, MNO transaction id)
    created_at_ms         INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at_ms         INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    settled_at_ms         INTEGER,              -- when status first became terminal or NEEDS_REVIEW
    next_poll_at_ms       INTEGER,              -- when the reconciler asks the provider next; NULL on an open row means "now", on a NEEDS_REVIEW row "never" (set while a held success awaits its confirming query)
    poll_attempts         INTEGER NOT NULL DEFAULT 0, -- status queries made so far
    deadline_at_ms        INTEGER,              -- still open by then: escalate to NEEDS_REVIEW (never auto-FAILED)
    review_polls          INTEGER NOT NULL DEFAULT 0, -- status queries made to confirm a success held on a NEEDS_REVIEW row; the reconciler stops at its cap
    unconfirmed_status    TEXT CHECK (unconfirmed_status = 'SUCCEEDED' OR unconfirmed_status = 'FAILED' OR unconfirmed_status = 'REVERSED'), -- a settlement reported only by a hint (token-only or field-signed callback), held until a status query confirms it
    unconfirmed_details   TEXT,                 -- JSON of values only a hint stated (amount, amount_minor, currency, merchant_ref, msisdn, receipt): while held, the hint's claim; once settled, what nothing authenticated confirmed
    status_confirmed      INTEGER NOT NULL DEFAULT 1 CHECK (status_confirmed IN (0, 1)), -- 0: the status was applied from a hint that no status query could check (told to the merchant as unconfirmed)
    UNIQUE (provider, provider_ref)
);

INSERT INTO transactions_new (id, provider, provider_ref, kind, status, reason, provider_status, amount_minor, currency, expected_amount_minor, expected_currency, merchant_ref, msisdn, receipt, created_at_ms, updated_at_ms, settled_at_ms, next_poll_at_ms, poll_attempts, deadline_at_ms, review_polls, unconfirmed_status, unconfirmed_details, status_confirmed)
    SELECT id, provider, provider_ref, kind, status, reason, provider_status, amount_minor, currency, expected_amount_minor, expected_currency, merchant_ref, msisdn, receipt, created_at_ms, updated_at_ms, settled_at_ms, next_poll_at_ms, poll_attempts, deadline_at_ms, review_polls, unconfirmed_status, unconfirmed_details, status_confirmed FROM transactions;

CREATE TABLE transitions_new (
    id             INTEGER PRIMARY KEY,         -- referenced by events.transition_id
    transaction_id INTEGER NOT NULL REFERENCES transactions(id), -- the transaction reported on
    seq            INTEGER NOT NULL,            -- 1, 2, 3, ... within the transaction
    outcome        TEXT    NOT NULL
                   CHECK (outcome = 'applied' OR outcome = 'conflict' OR outcome = 'stale' OR outcome = 'unconfirmed'),
                   -- applied: status (or a review's reason) changed; conflict: contradicted a terminal status, not applied;
                   -- stale: an older non-terminal report after the outcome, not applied;
                   -- unconfirmed: an unsigned success, held until a poll confirms it
    from_status    TEXT,                        -- status before; NULL when this row created the transaction
    to_status      TEXT    NOT NULL,            -- status reported or requested
    reason         TEXT,                        -- normalised reason given with the report
    source         TEXT    NOT NULL CHECK (source = 'callback' OR source = 'poll' OR source = 'operator' OR source = 'merchant' OR source = 'reconciler'), -- who reported it
    callback_id    INTEGER REFERENCES callbacks(id), -- set when source = 'callback'
    poll_id        INTEGER REFERENCES polls(id),     -- set when source = 'poll'
    note           TEXT,                        -- operator's note, or detail of a conflict
    at_ms          INTEGER NOT NULL,
    UNIQUE (transaction_id, seq)
);

INSERT INTO transitions_new (id, transaction_id, seq, outcome, from_status, to_status, reason, source, callback_id, poll_id, note, at_ms)
    SELECT id, transaction_id, seq, outcome, from_status, to_status, reason, source, callback_id, poll_id, note, at_ms FROM transitions;

CREATE TABLE events_new (
    id                 TEXT    PRIMARY KEY,     -- evt_<12 hex: transaction id><20 hex: hash of provider, provider_ref, transition seq>; sorts by transaction, stable across redeliveries and replays
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
    seq                INTEGER NOT NULL         -- outbox position: 1, 2, 3, ... in commit order, never reused (given by the INSERT, see below); the pull feed's cursor
);

INSERT INTO events_new (id, transaction_id, transition_id, type, payload, status, attempts, next_attempt_at_ms, created_at_ms, delivered_at_ms, last_error, schedule_started_at_ms, seq)
    SELECT id, transaction_id, transition_id, type, payload, status, attempts, next_attempt_at_ms, created_at_ms, delivered_at_ms, last_error, schedule_started_at_ms, seq FROM events;

CREATE TABLE deliveries_new (
    event_id               TEXT    NOT NULL REFERENCES events(id), -- the event delivered
    destination            TEXT    NOT NULL REFERENCES destination_state(name), -- where to
    transaction_id         INTEGER NOT NULL REFERENCES transactions(id), -- the event's, for ordering
    transition_id          INTEGER NOT NULL, -- the event's, for ordering within its transaction
    status                 TEXT    NOT NULL DEFAULT 'pending' -- pending: to deliver; delivered: acknowledged (2xx); dead: gave up, replayable
                           CHECK (status = 'pending' OR status = 'delivered' OR status = 'dead'),
    attempts               INTEGER NOT NULL DEFAULT 0, -- attempts in the current schedule
    next_attempt_at_ms     INTEGER,             -- when to try next; NULL once delivered or dead
    schedule_started_at_ms INTEGER NOT NULL,    -- start of the current schedule (creation, replay, resume); retry_horizon counts from it
    delivered_at_ms        INTEGER,
    last_error             TEXT,                -- why the last attempt failed
    PRIMARY KEY (event_id, destination)
) WITHOUT ROWID;

INSERT INTO deliveries_new (event_id, destination, transaction_id, transition_id, status, attempts, next_attempt_at_ms, schedule_started_at_ms, delivered_at_ms, last_error)
    SELECT event_id, destination, transaction_id, transition_id, status, attempts, next_attempt_at_ms, schedule_started_at_ms, delivered_at_ms, last_error FROM deliveries;

DROP TABLE deliveries;
DROP TABLE events;
DROP TABLE transitions;
DROP TABLE transactions;

ALTER TABLE transactions_new RENAME TO transactions;
ALTER TABLE transitions_new RENAME TO transitions;
ALTER TABLE events_new RENAME TO events;
ALTER TABLE deliveries_new RENAME TO deliveries;

CREATE INDEX transactions_due ON transactions (next_poll_at_ms)
    WHERE status IN ('PENDING','INDETERMINATE');

CREATE INDEX transactions_merchant_ref ON transactions (merchant_ref)
    WHERE merchant_ref IS NOT NULL;

CREATE INDEX transactions_held_due ON transactions (next_poll_at_ms)
    WHERE status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
      AND next_poll_at_ms IS NOT NULL;

CREATE TRIGGER transactions_provider_insert BEFORE INSERT ON transactions
    WHEN NEW.provider NOT IN (SELECT name FROM providers)
BEGIN
    SELECT RAISE(ABORT, 'unknown provider: not in the providers table');
END;
CREATE TRIGGER transactions_provider_update BEFORE UPDATE OF provider ON transactions
    WHEN NEW.provider NOT IN (SELECT name FROM providers)
BEGIN
    SELECT RAISE(ABORT, 'unknown provider: not in the providers table');
END;

CREATE INDEX events_due ON events (next_attempt_at_ms) WHERE status = 'pending';

CREATE UNIQUE INDEX events_transaction ON events (transaction_id, transition_id);

CREATE UNIQUE INDEX events_seq ON events (seq);

CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at_ms) WHERE status = 'pending';

CREATE INDEX deliveries_order ON deliveries (destination, transaction_id, transition_id) WHERE status = 'pending';

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

PRAGMA legacy_alter_table = OFF;
