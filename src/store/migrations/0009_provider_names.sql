-- Provider names leave the CHECK constraints of callbacks and transactions, so that
-- adding a provider is a row in the providers table (which payhook writes when it opens
-- the store) instead of a rebuild of both tables (schema.sql says why at that table). This is the rebuild that makes it so,
-- once: each table is created anew, its rows copied with their ids, the old one dropped
-- and the new one renamed, then its indexes and triggers are created. The migration
-- runner turns foreign keys off around it and checks them before committing.
-- legacy_alter_table keeps the RENAME from checking the views that name the tables while
-- the old ones are gone.
PRAGMA legacy_alter_table = ON;

-- The providers payhook knows, by route name; payhook adds the row of a provider added
-- later when it opens the store. transactions.provider is checked against this table by
-- triggers, because a merchant's application may INSERT transactions itself; a CHECK
-- listing the names would make every new provider a rebuild of the table, and a foreign
-- key is enforced only on connections that enable it. callbacks.provider is written by
-- payhook alone, from a provider it knows, so it is checked in Rust (no per-row cost on
-- the ingest path); reading back a name payhook does not know is an error there.
CREATE TABLE providers (
    name TEXT PRIMARY KEY                       -- route name, as in config, logs and metrics
) WITHOUT ROWID;
INSERT INTO providers (name) VALUES ('zengapay'), ('bitpesa'), ('daraja'), ('jenga'), ('tujenge');

CREATE TABLE transactions_new (
    id                    INTEGER PRIMARY KEY,  -- referenced by transitions, polls, events
    provider              TEXT    NOT NULL,     -- a name in providers (triggers transactions_provider_*)
    provider_ref          TEXT    NOT NULL,     -- the provider's id: ZengaPay transactionReference, TransferZero transaction id, Daraja CheckoutRequestID/TransID/OriginatorConversationID, Jenga reference, Tujenge tok_<id of the matching callback token>
    kind                  TEXT    NOT NULL DEFAULT 'unknown' -- payment kind: collection, transfer (payout), stk, c2b, b2c, ipn
                          CHECK (kind IN ('collection','transfer','stk','c2b','b2c','ipn','unknown')),
    status                TEXT    NOT NULL DEFAULT 'PENDING' -- normalised status (see Conventions)
                          CHECK (status IN ('PENDING','INDETERMINATE','SUCCEEDED','FAILED','REVERSED','NEEDS_REVIEW')),
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
    unconfirmed_status    TEXT CHECK (unconfirmed_status IN ('SUCCEEDED','FAILED','REVERSED')), -- a settlement reported only by a hint (token-only or field-signed callback), held until a status query confirms it
    unconfirmed_details   TEXT,                 -- JSON of values only a hint stated (amount, amount_minor, currency, merchant_ref, msisdn, receipt): while held, the hint's claim; once settled, what nothing authenticated confirmed
    status_confirmed      INTEGER NOT NULL DEFAULT 1 CHECK (status_confirmed IN (0, 1)), -- 0: the status was applied from a hint that no status query could check (told to the merchant as unconfirmed)
    UNIQUE (provider, provider_ref)
);
INSERT INTO transactions_new (id, provider, provider_ref, kind, status, reason, provider_status, amount_minor, currency, expected_amount_minor, expected_currency, merchant_ref, msisdn, receipt, created_at_ms, updated_at_ms, settled_at_ms, next_poll_at_ms, poll_attempts, deadline_at_ms, review_polls, unconfirmed_status, unconfirmed_details, status_confirmed)
    SELECT id, provider, provider_ref, kind, status, reason, provider_status, amount_minor, currency, expected_amount_minor, expected_currency, merchant_ref, msisdn, receipt, created_at_ms, updated_at_ms, settled_at_ms, next_poll_at_ms, poll_attempts, deadline_at_ms, review_polls, unconfirmed_status, unconfirmed_details, status_confirmed FROM transactions;

CREATE TABLE callbacks_new (
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
INSERT INTO callbacks_new (id, provider, kind, dedup_key, auth, signed, body, body_sha256, headers, client_ip, provider_ref, transaction_id, parse_error, deliveries, first_seen_at_ms, last_seen_at_ms, duplicate_of, report_sha256)
    SELECT id, provider, kind, dedup_key, auth, signed, body, body_sha256, headers, client_ip, provider_ref, transaction_id, parse_error, deliveries, first_seen_at_ms, last_seen_at_ms, duplicate_of, report_sha256 FROM callbacks;

DROP TABLE callbacks;
DROP TABLE transactions;
ALTER TABLE transactions_new RENAME TO transactions;
ALTER TABLE callbacks_new RENAME TO callbacks;

CREATE INDEX transactions_due ON transactions (next_poll_at_ms)
    WHERE status IN ('PENDING','INDETERMINATE');
CREATE INDEX transactions_merchant_ref ON transactions (merchant_ref)
    WHERE merchant_ref IS NOT NULL;
-- The reconciler's second queue: NEEDS_REVIEW rows holding an unsigned success (unconfirmed_status)
-- that a status query may still confirm, by due time; NULL next_poll_at_ms: given up.
CREATE INDEX transactions_held_due ON transactions (next_poll_at_ms)
    WHERE status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
      AND next_poll_at_ms IS NOT NULL;

-- A provider name must be in providers, whoever writes the row (see providers).
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

PRAGMA legacy_alter_table = OFF;
