-- Money truth: a hint (a token-only or field-signed callback) may report a failure or a
-- reversal as well as a success, and is held with the values it claimed until the status
-- endpoint confirms it (src/state/plan.rs). SQLite cannot change a CHECK in place, so
-- unconfirmed_status is rebuilt under a temporary name and renamed back (it moves to the
-- end of the table); the held queue's index, which reads it, is rebuilt around that.
DROP INDEX transactions_held_due;
ALTER TABLE transactions ADD COLUMN held_status TEXT CHECK (held_status IN ('SUCCEEDED','FAILED','REVERSED'));
UPDATE transactions SET held_status = unconfirmed_status;
ALTER TABLE transactions DROP COLUMN unconfirmed_status;
ALTER TABLE transactions RENAME COLUMN held_status TO unconfirmed_status;
ALTER TABLE transactions ADD COLUMN unconfirmed_details TEXT;
ALTER TABLE transactions ADD COLUMN status_confirmed INTEGER NOT NULL DEFAULT 1 CHECK (status_confirmed IN (0, 1));
CREATE INDEX transactions_held_due ON transactions (next_poll_at_ms)
    WHERE status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
      AND next_poll_at_ms IS NOT NULL;

-- Before this migration a held hint's amount, currency, phone number and receipt were
-- written into the transaction's own columns, where they would now read as stated by an
-- authenticated source: they move to unconfirmed_details.
UPDATE transactions
   SET unconfirmed_details = json_object('amount_minor', amount_minor, 'currency', currency,
                                         'msisdn', msisdn, 'receipt', receipt),
       amount_minor = NULL, currency = NULL, msisdn = NULL, receipt = NULL
 WHERE unconfirmed_status IS NOT NULL;

-- One callback delivered with two different bodies under one idempotency key: the second
-- is kept as its own row, pointing at the first; if the two say different things
-- (report_sha256), the transaction goes to review.
ALTER TABLE callbacks ADD COLUMN duplicate_of INTEGER REFERENCES callbacks(id);
ALTER TABLE callbacks ADD COLUMN report_sha256 TEXT;
