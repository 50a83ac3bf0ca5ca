-- payhook store schema: the documented query interface.
--
-- This file is documentation and a test oracle: tests/it/schema.rs proves that applying
-- every migration in src/store/migrations/ to an empty database yields exactly this
-- schema. Edit both together (a new migration plus this file), never one alone.
--
-- Conventions
--   * Times are UTC milliseconds since the Unix epoch, in INTEGER columns ending in at_ms.
--   * Money is never a float: amount_minor is an integer count of the currency's minor
--     unit (UGX has none, so 126600 UGX is 126600; KES has cents, so 1.00 KES is 100),
--     and currency is the ISO-4217 code beside it.
--   * provider is the route name, spelled as in config, logs and metrics, and listed in
--     the providers table: zengapay | bitpesa | daraja | jenga | tujenge.
--   * status is one of PENDING, INDETERMINATE, SUCCEEDED, FAILED, REVERSED, NEEDS_REVIEW
--     (the normalised status of every provider). SUCCEEDED, FAILED and REVERSED are terminal.
--   * A CHECK lists the values a column allows as col = 'a' OR col = 'b' ..., not as
--     col IN ('a', 'b', ...): SQLite evaluates an IN list of more than two constants by
--     building a temporary B-tree each time it checks a row, which made up much of the
--     cost of every insert on the writer (docs/benchmarks.md).
--   * Only payhook's single writer changes rows, except that a merchant application may
--     INSERT new transactions to have them tracked (see README "Tracking a payment").

-- The providers payhook knows, by route name. payhook writes the rows itself when it
-- opens the store, from the providers it is built with, so adding a provider takes no
-- migration (store::migrations::name_providers). transactions.provider is checked against this table by
-- triggers, because a merchant's application may INSERT transactions itself; a CHECK
-- listing the names would make every new provider a rebuild of the table, and a foreign
-- key is enforced only on connections that enable it. callbacks.provider is written by
-- payhook alone, from a provider it knows, so it is checked in Rust (no per-row cost on
-- the ingest path); reading back a name payhook does not know is an error there.
CREATE TABLE providers (
    name TEXT PRIMARY KEY                       -- route name, as in config, logs and metrics
) WITHOUT ROWID;                                -- rows: one per provider payhook knows

-- Every distinct callback a provider sent and payhook authenticated, kept verbatim.
CREATE TABLE callbacks (
    id               INTEGER PRIMARY KEY,       -- referenced by transitions.callback_id
    provider         TEXT    NOT NULL,          -- a name in providers, checked by payhook (see providers)
    kind             TEXT    NOT NULL,          -- callback kind, e.g. collection.success, stk, c2b_confirmation
    dedup_key        TEXT    NOT NULL,          -- provider's idempotency key; unparsed: sha256:<hex> of the body, after <token id>:<sub-route>: on token routes
    auth             TEXT    NOT NULL,          -- which check passed, e.g. hmac-sha256:fields-amount-2dp, basic, token+ip
    signed           INTEGER NOT NULL CHECK (signed IN (0, 1)), -- 1: a signature or credential proved the body; 0: path token / IP only
    body             BLOB    NOT NULL,          -- request body exactly as received
    body_sha256      TEXT    NOT NULL,          -- lowercase hex SHA-256 of body
    headers          TEXT    NOT NULL,          -- JSON object of request headers; credential values replaced by "[redacted]"
    client_ip        TEXT,                      -- resolved client address (TCP peer, or X-Forwarded-For via a trusted proxy)
    provider_ref     TEXT,                      -- transaction reference read from the body; NULL when not parsed
    transaction_id   INTEGER REFERENCES transactions(id), -- the transaction it reported on, if any
    parse_error      TEXT,                      -- NULL when parsed; otherwise why not: the callback awaits review
    deliveries       INTEGER NOT NULL DEFAULT 1, -- how many times the provider delivered it
    first_seen_at_ms INTEGER NOT NULL,
    last_seen_at_ms  INTEGER NOT NULL,
    duplicate_of     INTEGER REFERENCES callbacks(id), -- set when this body arrived under the idempotency key of an earlier, different body (dedup_key then ends with #sha256:<body hash>): both kept; if they say different things, the transaction is reviewed
    report_sha256    TEXT,                      -- hash of what the parsed body states (reference, status, amount, currency, merchant reference, phone, receipt); NULL when unparsed
    UNIQUE (provider, dedup_key)
);
-- A transaction's callbacks (`payhook show`). Partial: an unparsed callback has no
-- transaction, and only the UPDATE that links a callback to its transaction writes it.
CREATE INDEX callbacks_transaction ON callbacks (transaction_id)
    WHERE transaction_id IS NOT NULL;
-- Unparsed callbacks, for the review queue (review_queue). Partial: a parsed callback adds
-- nothing to it.
CREATE INDEX callbacks_unparsed ON callbacks (first_seen_at_ms)
    WHERE parse_error IS NOT NULL;

-- Request nonces seen on signed callbacks (BitPesa/TransferZero), to refuse replays.
-- The same nonce with the same body is a retry; with another body, a replay.
CREATE TABLE nonces (
    provider    TEXT    NOT NULL,
    nonce       TEXT    NOT NULL,               -- Authorization-Nonce as received
    body_sha256 TEXT    NOT NULL,               -- hash of the body first seen with this nonce
    callback_id INTEGER NOT NULL REFERENCES callbacks(id), -- the callback it first came with
    seen_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (provider, nonce)
) WITHOUT ROWID;

-- One row per payment at a provider: payhook's current truth about it.
CREATE TABLE transactions (
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
-- The reconciler's work queue: open transactions by due time.
CREATE INDEX transactions_due ON transactions (next_poll_at_ms)
    WHERE status IN ('PENDING','INDETERMINATE');
CREATE INDEX transactions_merchant_ref ON transactions (merchant_ref)
    WHERE merchant_ref IS NOT NULL;
-- The reconciler's second queue: NEEDS_REVIEW rows holding an unsigned success (unconfirmed_status)
-- that a status query may still confirm, by due time; NULL next_poll_at_ms: given up.
CREATE INDEX transactions_held_due ON transactions (next_poll_at_ms)
    WHERE status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
      AND next_poll_at_ms IS NOT NULL;
-- Transactions in review, for the review queue (review_queue).
CREATE INDEX transactions_review ON transactions (updated_at_ms)
    WHERE status = 'NEEDS_REVIEW';

-- A provider name must be in providers, whoever writes the row (see providers). A new
-- row's check FAILs rather than ABORTs, so that payhook's INSERT keeps no statement journal
-- (migration 0011): a single-row INSERT with an unknown provider writes nothing, but a
-- multi-row INSERT keeps the rows before the one refused; run it in a transaction and roll
-- back on error to have all or none.
CREATE TRIGGER transactions_provider_insert BEFORE INSERT ON transactions
    WHEN NEW.provider NOT IN (SELECT name FROM providers)
BEGIN
    SELECT RAISE(FAIL, 'unknown provider: not in the providers table');
END;
CREATE TRIGGER transactions_provider_update BEFORE UPDATE OF provider ON transactions
    WHEN NEW.provider NOT IN (SELECT name FROM providers)
BEGIN
    SELECT RAISE(ABORT, 'unknown provider: not in the providers table');
END;

-- Append-only history: every status reported about a transaction, applied or not.
CREATE TABLE transitions (
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
-- Conflicts, for the review queue (review_queue).
CREATE INDEX transitions_conflicts ON transitions (at_ms)
    WHERE outcome = 'conflict';

-- Every status query the reconciler made, successful or not.
CREATE TABLE polls (
    id              INTEGER PRIMARY KEY,        -- referenced by transitions.poll_id
    transaction_id  INTEGER NOT NULL REFERENCES transactions(id), -- the transaction asked about
    attempt         INTEGER NOT NULL,           -- transactions.poll_attempts after this poll
    at_ms           INTEGER NOT NULL,
    latency_ms      INTEGER,                    -- time to the answer (or the failure)
    http_status     INTEGER,                    -- NULL when no HTTP answer came (timeout, connection error)
    outcome         TEXT    NOT NULL CHECK (outcome IN ('status','failed')),
                    -- status: the provider stated a status; failed: no usable answer (never changes state)
    reported_status TEXT,                       -- normalised status from the answer
    provider_status TEXT,                       -- the provider's own word or code
    error           TEXT                        -- why the poll failed
);
CREATE INDEX polls_transaction ON polls (transaction_id);

-- Outbox: one event per settled transition, written in the same SQL transaction. Its
-- delivery columns (status ... last_error, schedule_started_at_ms) summarise the event's
-- rows in deliveries, one per destination (triggers deliveries_summary_*): pending while a
-- destination still has it (or before any destination took it), dead when one gave up.
CREATE TABLE events (
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
    seq                INTEGER PRIMARY KEY      -- outbox position: 1, 2, 3, ... in commit order, never reused (given by the INSERT, see below); the pull feed's cursor; the table's rowid, which VACUUM keeps
);
CREATE INDEX events_due ON events (next_attempt_at_ms) WHERE status = 'pending';
CREATE UNIQUE INDEX events_transaction ON events (transaction_id, transition_id);
-- seq is one more than the largest, given by the INSERT that writes the event inside the
-- writer's transaction, under SQLite's single write lock, so that seq order is commit
-- order (src/store/feed.rs explains the cursor; src/store/events.rs writes it).

-- Every delivery attempt of an event to the merchant.
CREATE TABLE attempts (
    id            INTEGER PRIMARY KEY,          -- attempt number, global
    event_id      TEXT    NOT NULL REFERENCES events(id), -- the event delivered
    destination   TEXT    NOT NULL,             -- URL posted to
    at_ms         INTEGER NOT NULL,
    latency_ms    INTEGER NOT NULL,             -- time to the answer, or to the failure
    http_status   INTEGER,                      -- NULL when no HTTP answer came
    error         TEXT,                         -- timeout, connection refused, ...
    response_head TEXT,                         -- first bytes of the answer body
    destination_name TEXT NOT NULL DEFAULT 'default' -- destination_state.name
);
CREATE INDEX attempts_event ON attempts (event_id);

-- Where events are delivered, and whether payhook may still post there.
CREATE TABLE destinations (
    url             TEXT    PRIMARY KEY,        -- the [forward] url events are POSTed to
    disabled_at_ms  INTEGER,                    -- set when it answered 410 Gone: nothing is posted until re-enabled (payhook events enable-destination)
    disabled_reason TEXT                        -- why it was disabled, e.g. "410 Gone"
) WITHOUT ROWID;

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
                           CHECK (status = 'pending' OR status = 'delivered' OR status = 'dead'),
    attempts               INTEGER NOT NULL DEFAULT 0, -- attempts in the current schedule
    next_attempt_at_ms     INTEGER,             -- when to try next; NULL once delivered or dead
    schedule_started_at_ms INTEGER NOT NULL,    -- start of the current schedule (creation, replay, resume); retry_horizon counts from it
    delivered_at_ms        INTEGER,
    last_error             TEXT,                -- why the last attempt failed
    PRIMARY KEY (event_id, destination)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at_ms) WHERE status = 'pending';
CREATE INDEX deliveries_order ON deliveries (destination, transaction_id, transition_id) WHERE status = 'pending';
-- Keep each events row's delivery columns a summary of its deliveries.
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

-- Payments a per-payment callback URL was minted for (payhook callback-url,
-- POST /v1/callback-urls). A callback on such a URL is tied to its payment: Tujenge's
-- transaction is the payment itself (provider_ref is the payment id); Daraja's
-- CheckoutRequestID or ConversationID is bound to it on its first callback, and a later
-- callback that would bind another reference, or bind the reference to another payment, is
-- a conflict for review.
CREATE TABLE minted_payments (
    payment_id            TEXT    PRIMARY KEY,  -- the id in the URL (base64url, 22 characters)
    provider              TEXT    NOT NULL,     -- the provider whose route the URL is for
    kind                  TEXT    NOT NULL DEFAULT 'unknown', -- payment kind, as registered
    merchant_ref          TEXT,                 -- the merchant's own reference, as registered
    expected_amount_minor INTEGER,              -- the amount the merchant expects, in minor units
    expected_currency     TEXT,                 -- ISO-4217 code of expected_amount_minor
    provider_ref          TEXT,                 -- the provider's reference bound to it (NULL until the first callback, for Daraja)
    created_at_ms         INTEGER NOT NULL,
    bound_at_ms           INTEGER,              -- when provider_ref was bound
    UNIQUE (provider, provider_ref)
) WITHOUT ROWID;

-- The readiness probe's proof that the store accepts writes.
CREATE TABLE heartbeat (
    id          INTEGER PRIMARY KEY CHECK (id = 1), -- a single row
    written_at_ms INTEGER NOT NULL
);

-- Open transactions, oldest first.
CREATE VIEW pending_by_age AS
    SELECT provider, provider_ref, status, merchant_ref, amount_minor, currency,
           created_at_ms, next_poll_at_ms, poll_attempts
    FROM transactions
    WHERE status IN ('PENDING','INDETERMINATE')
    ORDER BY created_at_ms;

-- Review items a human closed: a conflict or an unparsed callback looked at (payhook
-- review dismiss ID --note N), or a transaction's conflicts closed by payhook resolve.
-- The history itself is never edited.
CREATE TABLE review_dismissals (
    item      TEXT    NOT NULL CHECK (item IN ('conflict','callback')), -- what was closed
    target_id INTEGER NOT NULL,                 -- transitions.id of a conflict, callbacks.id of an unparsed callback
    note      TEXT    NOT NULL,                 -- why, as the operator wrote it
    at_ms     INTEGER NOT NULL,
    PRIMARY KEY (item, target_id)
) WITHOUT ROWID;

-- What a human must look at: NEEDS_REVIEW transactions, conflicts and unparsed callbacks
-- not yet dismissed. id (txn-N, conflict-N, callback-N) is what payhook review dismiss takes.
CREATE VIEW review_queue AS
    SELECT 'txn-' || t.id AS id, 'transaction' AS item, t.provider, t.provider_ref, t.status,
           t.reason AS detail, t.updated_at_ms AS at_ms
    FROM transactions t WHERE t.status = 'NEEDS_REVIEW'
    UNION ALL
    SELECT 'conflict-' || r.id, 'conflict', t.provider, t.provider_ref, r.to_status, COALESCE(r.reason, r.note), r.at_ms
    FROM transitions r JOIN transactions t ON t.id = r.transaction_id
    WHERE r.outcome = 'conflict'
      AND NOT EXISTS (SELECT 1 FROM review_dismissals d WHERE d.item = 'conflict' AND d.target_id = r.id)
    UNION ALL
    SELECT 'callback-' || c.id, 'callback', c.provider, c.provider_ref, NULL, c.parse_error, c.first_seen_at_ms
    FROM callbacks c
    WHERE c.parse_error IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM review_dismissals d WHERE d.item = 'callback' AND d.target_id = c.id);

-- Deliveries the merchant's receivers never acknowledged, one row per event and destination.
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

-- Settled money per UTC day, provider, status and currency.
CREATE VIEW daily_totals AS
    SELECT date(settled_at_ms / 1000, 'unixepoch') AS day, provider, status, currency,
           count(*) AS transactions, sum(amount_minor) AS amount_minor
    FROM transactions
    WHERE settled_at_ms IS NOT NULL
    GROUP BY day, provider, status, currency;
